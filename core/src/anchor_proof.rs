//! The anchor inclusion proof and its offline verifier.
//!
//! An [`AnchorProof`] shows that a Bitcoin transaction carrying `OP_RETURN <digest>` is in a
//! block, and that headers with proof of work are built on that block:
//!
//! ```text
//! digest --OP_RETURN--> tx --txid + merkle path--> headers[0].merkle_root
//!        headers[0] <-prev_blockhash- headers[1] <- ... <- headers[n-1]   (each meets its target)
//! ```
//!
//! The verifier checks each header's hash against its own `bits` and bounds `bits` by the
//! network's proof-of-work limit. Counting headers proves nothing (anyone can mine easy ones on
//! a side chain), so the caller states what it trusts about Bitcoin ([`ChainTrust`]): the
//! cumulative work the headers must carry, or a block it already knows is in the chain it
//! follows, which the headers must reach. A successful verification means: a transaction
//! committing the digest is in a block whose descendants (up to the proof's tip) carry at least
//! that much work, or in an ancestor of that trusted block. It says nothing about whether that
//! chain is still the best one beyond what the trust input implies.
//!
//! # Encoding (format 1)
//!
//! ```text
//! "IPAP" | 0x01
//! u32be tx_len    | tx: consensus encoding WITHOUT witness (the txid preimage)
//! u32be index     | u8 depth (<= 32) | depth x 32-byte sibling hashes (leaf level first)
//! u32be n_headers | n x 80-byte consensus-encoded headers (the tx's block first)
//! 4-byte checksum: first 4 bytes of sha256d(everything before)
//! ```
//!
//! Decoding is strict (one encoding per proof: no trailing bytes, no witness, canonical
//! transaction bytes, index within the path's width) and never panics. The checksum catches
//! corruption in transit early with a clear error; it adds no security, which comes from the
//! hash links and proof of work checked by [`AnchorProof::verify`].

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::pow::Work;
use bitcoin::{Block, BlockHash, Network, Target, Transaction, TxMerkleNode, Txid};

use crate::anchor_digest::anchor_script;

/// Magic bytes opening an encoded proof.
pub const PROOF_MAGIC: &[u8; 4] = b"IPAP";
/// Encoding format version.
pub const PROOF_FORMAT: u8 = 1;
/// Largest transaction accepted in a proof (bytes, without witness).
pub const MAX_PROOF_TX_BYTES: usize = 100_000;
/// Most headers accepted in a proof.
pub const MAX_PROOF_HEADERS: usize = 10_000;
/// Deepest merkle path accepted (a block cannot hold 2^32 transactions).
pub const MAX_MERKLE_DEPTH: usize = 32;

/// Why a proof failed to decode or verify.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("proof encoding: truncated while reading {0}")]
    Truncated(&'static str),
    #[error("proof encoding: bad magic bytes")]
    BadMagic,
    #[error("proof encoding: unsupported format {0}")]
    UnsupportedFormat(u8),
    #[error("proof encoding: checksum mismatch")]
    BadChecksum,
    #[error("proof encoding: {what} is {len}, at most {max} allowed")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("proof encoding: {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("proof encoding: bad transaction: {0}")]
    BadTx(String),
    #[error("proof encoding: transaction is not in canonical witness-free form")]
    NonCanonicalTx,
    #[error("proof encoding: bad header {index}: {reason}")]
    BadHeader { index: usize, reason: String },
    #[error("proof: the transaction has no output OP_RETURN <{expected}>")]
    DigestNotFound { expected: String },
    #[error("proof: 64-byte transactions are refused (ambiguous with merkle inner nodes)")]
    Ambiguous64ByteTx,
    #[error("proof: merkle index {index} does not fit a path of depth {depth}")]
    IndexOutOfRange { index: u32, depth: usize },
    #[error("proof: merkle path uses a duplicated (phantom) position at level {level}")]
    PhantomPosition { level: usize },
    #[error("proof: merkle path leads to {computed}, the block commits to {committed}")]
    MerkleRootMismatch {
        computed: TxMerkleNode,
        committed: TxMerkleNode,
    },
    #[error("proof: no headers")]
    NoHeaders,
    #[error("proof: header {index} ({hash}) claims a target above the {network} limit")]
    TargetAboveLimit {
        index: usize,
        hash: BlockHash,
        network: Network,
    },
    #[error("proof: header {index} ({hash}) does not meet its own target")]
    InsufficientWork { index: usize, hash: BlockHash },
    #[error("proof: header {index} does not build on header {}", index - 1)]
    BrokenChain { index: usize },
    #[error("proof: the headers carry work {have:?}, {need:?} is required")]
    NotEnoughWork { have: Work, need: Work },
    #[error("proof: the headers do not reach the trusted block {0}")]
    TrustedBlockMissing(BlockHash),
    #[error("proof: transaction {0} is not in the block")]
    TxNotInBlock(Txid),
}

/// Position of a transaction in its block's merkle tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerklePath {
    /// The transaction's index in the block; bit `i` says whether the node at level `i` is a
    /// right child (1) or left child (0).
    pub index: u32,
    /// Sibling hashes, leaf level first, in internal byte order (as hashed).
    pub siblings: Vec<[u8; 32]>,
}

impl MerklePath {
    /// The path of `txids[index]` in Bitcoin's merkle tree over `txids` (odd levels
    /// duplicate their last node).
    pub fn from_txids(txids: &[Txid], index: usize) -> Option<Self> {
        if index >= txids.len() || index > u32::MAX as usize {
            return None;
        }
        let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
        let mut i = index;
        let mut siblings = Vec::new();
        while level.len() > 1 {
            let sib = if i ^ 1 < level.len() { i ^ 1 } else { i };
            siblings.push(level[sib]);
            level = level
                .chunks(2)
                .map(|pair| hash_pair(&pair[0], pair.get(1).unwrap_or(&pair[0])))
                .collect();
            i >>= 1;
        }
        Some(MerklePath {
            index: index as u32,
            siblings,
        })
    }

    /// The merkle root this path gives for `txid`, refusing non-canonical paths: an index
    /// wider than the path, or a right-child position whose left sibling is itself (the
    /// duplicated last node of an odd level, which is not a real transaction position).
    pub fn root(&self, txid: &Txid) -> Result<TxMerkleNode, ProofError> {
        let depth = self.siblings.len();
        if depth > MAX_MERKLE_DEPTH {
            return Err(ProofError::TooLarge {
                what: "merkle path depth",
                len: depth,
                max: MAX_MERKLE_DEPTH,
            });
        }
        if depth < 32 && (self.index as u64) >> depth != 0 {
            return Err(ProofError::IndexOutOfRange {
                index: self.index,
                depth,
            });
        }
        let mut h = txid.to_byte_array();
        for (level, sib) in self.siblings.iter().enumerate() {
            if (self.index >> level) & 1 == 1 {
                if *sib == h {
                    return Err(ProofError::PhantomPosition { level });
                }
                h = hash_pair(sib, &h);
            } else {
                h = hash_pair(&h, sib);
            }
        }
        Ok(TxMerkleNode::from_byte_array(h))
    }
}

fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left);
    buf[32..].copy_from_slice(right);
    sha256d::Hash::hash(&buf).to_byte_array()
}

/// Proof that a transaction committing an anchor digest is in Bitcoin, under `headers.len()`
/// confirmations' worth of headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorProof {
    /// The anchor transaction (its witness is irrelevant and not encoded).
    pub tx: Transaction,
    /// Its merkle path in the block `headers[0]`.
    pub path: MerklePath,
    /// The header of the block holding `tx`, then its descendants in order.
    pub headers: Vec<Header>,
}

/// What the verifier of an [`AnchorProof`] trusts about Bitcoin, given explicitly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainTrust {
    /// The headers from the anchor's block to the proof's tip must carry at least this much
    /// work, summed from their targets: what forging the proof would cost.
    MinimumWork(Work),
    /// One of the headers must be this block, which the verifier already holds as part of the
    /// chain it follows (its own node's best chain, say): the anchor's block is then in that
    /// chain.
    Extends(BlockHash),
}

/// What a successful verification establishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedAnchor {
    /// The anchor transaction.
    pub txid: Txid,
    /// The block holding it.
    pub block_hash: BlockHash,
    /// The last header of the proof.
    pub tip_hash: BlockHash,
    /// Number of headers from the anchor's block to the tip, inclusive.
    pub confirmations: usize,
    /// Work of those headers, summed from their targets.
    pub total_work: Work,
}

impl AnchorProof {
    /// The proof for `txid` in `block`, followed by `later_headers` (the block's descendants,
    /// in order; not checked here, [`Self::verify`] does that).
    pub fn from_block(
        block: &Block,
        txid: &Txid,
        later_headers: Vec<Header>,
    ) -> Result<Self, ProofError> {
        let txids: Vec<Txid> = block.txdata.iter().map(|t| t.compute_txid()).collect();
        let index = txids
            .iter()
            .position(|t| t == txid)
            .ok_or(ProofError::TxNotInBlock(*txid))?;
        let path = MerklePath::from_txids(&txids, index).ok_or(ProofError::TxNotInBlock(*txid))?;
        let mut tx = block.txdata[index].clone();
        strip_witness(&mut tx);
        let mut headers = Vec::with_capacity(1 + later_headers.len());
        headers.push(block.header);
        headers.extend(later_headers);
        Ok(AnchorProof { tx, path, headers })
    }

    /// Checks the proof offline: the transaction commits `expected_digest` in an
    /// `OP_RETURN` output, its merkle path reaches the first header's merkle root, the headers
    /// chain by `prev_blockhash`, each meets its own target (which is within `network`'s
    /// proof-of-work limit), and they satisfy `trust` (see the module documentation for what
    /// that establishes).
    pub fn verify(
        &self,
        expected_digest: &[u8; 32],
        trust: &ChainTrust,
        network: Network,
    ) -> Result<VerifiedAnchor, ProofError> {
        let script = anchor_script(expected_digest);
        if !self.tx.output.iter().any(|o| o.script_pubkey == script) {
            return Err(ProofError::DigestNotFound {
                expected: hex::encode(expected_digest),
            });
        }
        if self.tx.base_size() == 64 {
            return Err(ProofError::Ambiguous64ByteTx);
        }
        let first = self.headers.first().ok_or(ProofError::NoHeaders)?;
        let txid = self.tx.compute_txid();
        let computed = self.path.root(&txid)?;
        if computed != first.merkle_root {
            return Err(ProofError::MerkleRootMismatch {
                computed,
                committed: first.merkle_root,
            });
        }
        let limit: Target = bitcoin::params::Params::new(network).max_attainable_target;
        let mut total_work: Option<Work> = None;
        let mut prev: Option<BlockHash> = None;
        for (index, h) in self.headers.iter().enumerate() {
            let hash = h.block_hash();
            if let Some(p) = prev {
                if h.prev_blockhash != p {
                    return Err(ProofError::BrokenChain { index });
                }
            }
            let target = h.target();
            if target > limit {
                return Err(ProofError::TargetAboveLimit {
                    index,
                    hash,
                    network,
                });
            }
            h.validate_pow(target)
                .map_err(|_| ProofError::InsufficientWork { index, hash })?;
            total_work = Some(match total_work {
                None => h.work(),
                Some(w) => w + h.work(),
            });
            prev = Some(hash);
        }
        let total_work = total_work.unwrap_or_else(|| first.work());
        match trust {
            ChainTrust::MinimumWork(need) if total_work < *need => {
                return Err(ProofError::NotEnoughWork {
                    have: total_work,
                    need: *need,
                });
            }
            ChainTrust::Extends(trusted)
                if !self.headers.iter().any(|h| h.block_hash() == *trusted) =>
            {
                return Err(ProofError::TrustedBlockMissing(*trusted));
            }
            _ => {}
        }
        Ok(VerifiedAnchor {
            txid,
            block_hash: first.block_hash(),
            tip_hash: prev.unwrap_or_else(|| first.block_hash()),
            confirmations: self.headers.len(),
            total_work,
        })
    }

    /// The canonical encoding (see the module documentation). A proof that could not verify
    /// anyway (over [`MAX_MERKLE_DEPTH`] siblings, over [`MAX_PROOF_HEADERS`] headers) encodes
    /// to bytes that [`Self::decode`] refuses.
    pub fn encode(&self) -> Vec<u8> {
        let mut tx = self.tx.clone();
        strip_witness(&mut tx);
        let tx_bytes = serialize(&tx);
        let mut out = Vec::with_capacity(
            5 + 4
                + tx_bytes.len()
                + 5
                + 32 * self.path.siblings.len()
                + 4
                + 80 * self.headers.len()
                + 4,
        );
        out.extend_from_slice(PROOF_MAGIC);
        out.push(PROOF_FORMAT);
        out.extend_from_slice(&(tx_bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&tx_bytes);
        out.extend_from_slice(&self.path.index.to_be_bytes());
        out.push(self.path.siblings.len().min(255) as u8);
        for s in &self.path.siblings {
            out.extend_from_slice(s);
        }
        out.extend_from_slice(&(self.headers.len() as u32).to_be_bytes());
        for h in &self.headers {
            out.extend_from_slice(&serialize(h));
        }
        let sum = sha256d::Hash::hash(&out);
        out.extend_from_slice(&sum.as_byte_array()[..4]);
        out
    }

    /// Decodes [`Self::encode`]'s output; any other input is an error (never a panic).
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        if bytes.len() < PROOF_MAGIC.len() + 1 + 4 {
            return Err(ProofError::Truncated("header and checksum"));
        }
        if &bytes[..4] != PROOF_MAGIC {
            return Err(ProofError::BadMagic);
        }
        if bytes[4] != PROOF_FORMAT {
            return Err(ProofError::UnsupportedFormat(bytes[4]));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 4);
        if sha256d::Hash::hash(body).as_byte_array()[..4] != *sum {
            return Err(ProofError::BadChecksum);
        }
        let mut r = Reader { buf: &body[5..] };

        let tx_len = r.u32("transaction length")? as usize;
        if tx_len > MAX_PROOF_TX_BYTES {
            return Err(ProofError::TooLarge {
                what: "transaction",
                len: tx_len,
                max: MAX_PROOF_TX_BYTES,
            });
        }
        let tx_bytes = r.take(tx_len, "transaction")?;
        let tx: Transaction =
            deserialize(tx_bytes).map_err(|e| ProofError::BadTx(e.to_string()))?;
        if tx.input.iter().any(|i| !i.witness.is_empty()) || serialize(&tx) != tx_bytes {
            return Err(ProofError::NonCanonicalTx);
        }

        let index = r.u32("merkle index")?;
        let depth = r.take(1, "merkle depth")?[0] as usize;
        if depth > MAX_MERKLE_DEPTH {
            return Err(ProofError::TooLarge {
                what: "merkle path depth",
                len: depth,
                max: MAX_MERKLE_DEPTH,
            });
        }
        let mut siblings = Vec::with_capacity(depth);
        for _ in 0..depth {
            let mut s = [0u8; 32];
            s.copy_from_slice(r.take(32, "merkle sibling")?);
            siblings.push(s);
        }
        if depth < 32 && (index as u64) >> depth != 0 {
            return Err(ProofError::IndexOutOfRange { index, depth });
        }

        let n = r.u32("header count")? as usize;
        if n > MAX_PROOF_HEADERS {
            return Err(ProofError::TooLarge {
                what: "header count",
                len: n,
                max: MAX_PROOF_HEADERS,
            });
        }
        if n == 0 {
            return Err(ProofError::NoHeaders);
        }
        let mut headers = Vec::with_capacity(n);
        for i in 0..n {
            let h: Header =
                deserialize(r.take(80, "header")?).map_err(|e| ProofError::BadHeader {
                    index: i,
                    reason: e.to_string(),
                })?;
            headers.push(h);
        }
        if !r.buf.is_empty() {
            return Err(ProofError::TrailingBytes(r.buf.len()));
        }
        Ok(AnchorProof {
            tx,
            path: MerklePath { index, siblings },
            headers,
        })
    }
}

fn strip_witness(tx: &mut Transaction) {
    for i in &mut tx.input {
        i.witness.clear();
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProofError> {
        if self.buf.len() < n {
            return Err(ProofError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ProofError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::block::Version as BlockVersion;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, CompactTarget, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    const DIGEST: [u8; 32] = [0xd1; 32];

    fn tx(n: u32, digest: &[u8; 32]) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([n as u8; 32]), n),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::from_slice(&[vec![1u8; 64]]),
            }],
            output: vec![
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: anchor_script(digest),
                },
                TxOut {
                    value: Amount::from_sat(1000 + n as u64),
                    script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
                },
            ],
        }
    }

    /// Mines a regtest header (about two tries on average).
    fn mine(prev: BlockHash, merkle_root: TxMerkleNode, time: u32) -> Header {
        let mut h = Header {
            version: BlockVersion::TWO,
            prev_blockhash: prev,
            merkle_root,
            time,
            bits: CompactTarget::from_consensus(0x207fffff),
            nonce: 0,
        };
        while h.validate_pow(h.target()).is_err() {
            h.nonce += 1;
        }
        h
    }

    fn block_with(n_txs: u32, anchor_at: u32) -> Block {
        let txdata: Vec<Transaction> = (0..n_txs)
            .map(|i| tx(i, if i == anchor_at { &DIGEST } else { &[0; 32] }))
            .collect();
        let mut block = Block {
            header: mine(BlockHash::all_zeros(), TxMerkleNode::all_zeros(), 1),
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().unwrap();
        block.header = mine(BlockHash::all_zeros(), block.header.merkle_root, 1);
        block
    }

    /// The work of `n` headers like the proof's first one (test headers share one target).
    fn work(p: &AnchorProof, n: u32) -> ChainTrust {
        let one = p
            .headers
            .first()
            .map_or(Work::from_be_bytes([0; 32]), |h| h.work());
        let mut total = Work::from_be_bytes([0; 32]);
        for _ in 0..n {
            total = total + one;
        }
        ChainTrust::MinimumWork(total)
    }

    fn proof(n_txs: u32, at: u32, confirmations: u32) -> AnchorProof {
        let block = block_with(n_txs, at);
        let mut later = Vec::new();
        let mut prev = block.block_hash();
        for i in 1..confirmations {
            let h = mine(prev, TxMerkleNode::all_zeros(), 1 + i);
            prev = h.block_hash();
            later.push(h);
        }
        let txid = block.txdata[at as usize].compute_txid();
        AnchorProof::from_block(&block, &txid, later).unwrap()
    }

    #[test]
    fn merkle_paths_verify_for_every_position() {
        for n in 1..=17u32 {
            for at in 0..n {
                let p = proof(n, at, 1);
                p.verify(&DIGEST, &work(&p, 1), Network::Regtest)
                    .unwrap_or_else(|e| panic!("{n} txs, index {at}: {e}"));
                let decoded = AnchorProof::decode(&p.encode()).unwrap();
                assert_eq!(decoded, p);
            }
        }
    }

    #[test]
    fn phantom_duplicate_position_is_refused() {
        // 3 transactions: position 3 is the duplicated copy of position 2.
        let p = proof(3, 2, 1);
        let mut phantom = p.clone();
        phantom.path.index = 3;
        assert_eq!(
            phantom.verify(&DIGEST, &work(&p, 1), Network::Regtest),
            Err(ProofError::PhantomPosition { level: 0 })
        );
    }

    #[test]
    fn checks_fail_as_expected() {
        let p = proof(4, 1, 3);
        let ok = p.verify(&DIGEST, &work(&p, 3), Network::Regtest).unwrap();
        assert_eq!(ok.confirmations, 3);
        assert_eq!(ok.block_hash, p.headers[0].block_hash());
        assert_eq!(ok.tip_hash, p.headers[2].block_hash());
        assert!(matches!(
            p.verify(&[0; 32], &work(&p, 1), Network::Regtest),
            Err(ProofError::DigestNotFound { .. })
        ));
        // Work, not a header count: three headers do not carry four headers' work.
        assert!(matches!(
            p.verify(&DIGEST, &work(&p, 4), Network::Regtest),
            Err(ProofError::NotEnoughWork { .. })
        ));
        // A block the verifier trusts must be among the headers.
        let tip = ChainTrust::Extends(p.headers[2].block_hash());
        assert!(p.verify(&DIGEST, &tip, Network::Regtest).is_ok());
        let elsewhere = ChainTrust::Extends(BlockHash::all_zeros());
        assert_eq!(
            p.verify(&DIGEST, &elsewhere, Network::Regtest),
            Err(ProofError::TrustedBlockMissing(BlockHash::all_zeros()))
        );
        // Regtest difficulty is far above the mainnet limit.
        assert!(matches!(
            p.verify(&DIGEST, &work(&p, 1), Network::Bitcoin),
            Err(ProofError::TargetAboveLimit { index: 0, .. })
        ));
        let mut broken = p.clone();
        broken.headers.swap(1, 2);
        assert!(matches!(
            broken.verify(&DIGEST, &work(&p, 1), Network::Regtest),
            Err(ProofError::BrokenChain { .. })
        ));
        let mut wrong_index = p.clone();
        wrong_index.path.index = 0;
        assert!(matches!(
            wrong_index.verify(&DIGEST, &work(&p, 1), Network::Regtest),
            Err(ProofError::MerkleRootMismatch { .. })
        ));
        let mut no_headers = p.clone();
        no_headers.headers.clear();
        assert_eq!(
            no_headers.verify(&DIGEST, &work(&p, 0), Network::Regtest),
            Err(ProofError::NoHeaders)
        );
    }

    #[test]
    fn encoding_is_canonical_and_strips_the_witness() {
        let p = proof(2, 1, 2);
        let bytes = p.encode();
        let d = AnchorProof::decode(&bytes).unwrap();
        assert!(d.tx.input[0].witness.is_empty());
        assert_eq!(d.encode(), bytes);
        let mut with_witness = d.clone();
        with_witness.tx.input[0].witness = Witness::from_slice(&[vec![9u8; 10]]);
        assert_eq!(with_witness.encode(), bytes);
    }

    #[test]
    fn decode_never_panics_on_garbage() {
        let p = proof(5, 3, 3);
        let good = p.encode();
        // Every truncation and every extension is refused.
        for len in 0..good.len() {
            assert!(AnchorProof::decode(&good[..len]).is_err(), "prefix {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(AnchorProof::decode(&longer).is_err());
        // Pseudo-random inputs, with and without a valid prefix and checksum.
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..5_000 {
            let len = (next() % 600) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && b.len() > 9 {
                b[..4].copy_from_slice(PROOF_MAGIC);
                b[4] = PROOF_FORMAT;
                let n = b.len() - 4;
                let sum = sha256d::Hash::hash(&b[..n]);
                b[n..].copy_from_slice(&sum.as_byte_array()[..4]);
            }
            let _ = AnchorProof::decode(&b);
        }
        // Huge declared lengths are refused before allocating.
        let mut huge = Vec::from(&PROOF_MAGIC[..]);
        huge.push(PROOF_FORMAT);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        let sum = sha256d::Hash::hash(&huge);
        huge.extend_from_slice(&sum.as_byte_array()[..4]);
        assert!(matches!(
            AnchorProof::decode(&huge),
            Err(ProofError::TooLarge { .. })
        ));
    }
}
