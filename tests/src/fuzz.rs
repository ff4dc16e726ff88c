//! A small, seeded mutation fuzzer for the decoders that take outside input: every case is a
//! valid input with random damage (bit flips, overwritten, inserted, deleted or duplicated
//! bytes, truncation, splices of two inputs) or plain random bytes. Deterministic for a seed,
//! so a failing case can be replayed; no corpus, no instrumentation, no extra toolchain.
//!
//! The number of cases per target is `IPSAT_FUZZ_CASES` (default [`DEFAULT_CASES`], the
//! short run of `scripts/test`; `scripts/fuzz` runs a million per target).

/// Cases per target when `IPSAT_FUZZ_CASES` is not set.
pub const DEFAULT_CASES: u64 = 3_000;

/// Cases per target for this run.
pub fn cases() -> u64 {
    std::env::var("IPSAT_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// A xorshift64* generator: fast and reproducible, not cryptographic.
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A generator seeded with `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// One case derived from `seeds` (valid inputs of the target).
    pub fn case(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        if seeds.is_empty() || self.below(16) == 0 {
            let len = self.below(512);
            return self.bytes(len);
        }
        let mut data = seeds[self.below(seeds.len())].clone();
        for _ in 0..=self.below(4) {
            self.damage(&mut data, seeds);
        }
        data
    }

    fn damage(&mut self, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let len = data.len();
        match self.below(8) {
            0 | 1 if len > 0 => {
                let at = self.below(len);
                data[at] ^= 1 << self.below(8);
            }
            2 if len > 0 => {
                let at = self.below(len);
                data[at] = self.next_u64() as u8;
            }
            3 => {
                // Half the insertions go at the end, where decoders meet trailing data.
                let at = if self.below(2) == 0 {
                    len
                } else {
                    self.below(len + 1)
                };
                let n = 1 + self.below(8);
                let inserted = self.bytes(n);
                data.splice(at..at, inserted);
            }
            4 if len > 0 => {
                let at = self.below(len);
                let end = (at + 1 + self.below(8)).min(len);
                data.drain(at..end);
            }
            5 if len > 0 => data.truncate(self.below(len)),
            6 if len > 0 => {
                let at = self.below(len);
                let end = (at + 1 + self.below(16)).min(len);
                let chunk = data[at..end].to_vec();
                let to = self.below(data.len() + 1);
                data.splice(to..to, chunk);
            }
            _ => {
                let other = &seeds[self.below(seeds.len())];
                let cut = self.below(len + 1);
                let from = self.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_cases_and_cases_vary() {
        let seeds = vec![b"a valid input".to_vec()];
        let (mut a, mut b) = (Mutator::new(7), Mutator::new(7));
        let first: Vec<Vec<u8>> = (0..100).map(|_| a.case(&seeds)).collect();
        let again: Vec<Vec<u8>> = (0..100).map(|_| b.case(&seeds)).collect();
        assert_eq!(first, again);
        let distinct: std::collections::BTreeSet<_> = first.iter().collect();
        assert!(
            distinct.len() > 50,
            "only {} distinct cases",
            distinct.len()
        );
    }
}
