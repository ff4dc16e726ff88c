//! Quorum certificates: one aggregate BLS signature and a bitmap naming its signers among a
//! validator set the verifier holds in its own state.
//!
//! Verification never takes a power or a key from the certificate: the bitmap only selects
//! members of the verifier's set, so a forged bitmap can at worst select the wrong signers,
//! and then the aggregate does not verify.

use blst::min_pk::{AggregateSignature, PublicKey, Signature};
use blst::BLST_ERROR;

use crate::bls::{BlsError, BlsPublicKey, BlsSignature, SIGNATURE_DST};

/// One member of a signing set, in the set's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// Its validated key.
    pub key: BlsPublicKey,
    /// Its voting power.
    pub power: u64,
}

/// Why a certificate does not certify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The bitmap's length is not the set's, or it names members beyond the set.
    #[error("the signer bitmap has {got} bytes with bits beyond a set of {members}")]
    Bitmap {
        /// Members in the verifier's set.
        members: usize,
        /// Bytes in the bitmap.
        got: usize,
    },
    /// The signers hold two thirds of the power or less.
    #[error("signers hold {signed} of {total} power, more than two thirds is needed")]
    BelowQuorum {
        /// Power of the named signers.
        signed: u128,
        /// Power of the whole set.
        total: u128,
    },
    /// The aggregate signature is malformed or does not verify for the named signers.
    #[error("the aggregate signature: {0}")]
    Signature(#[from] BlsError),
}

/// An aggregate signature over one digest by the members its bitmap names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Bit `i` (byte `i / 8`, bit `i % 8`, least significant first) is set when member `i`
    /// signed. Exactly `ceil(n / 8)` bytes, no bit at or beyond `n`.
    pub signers: Vec<u8>,
    /// The aggregate of the named members' signatures.
    pub signature: BlsSignature,
}

fn bitmap_bytes(members: usize) -> usize {
    members.div_ceil(8)
}

fn is_set(bitmap: &[u8], index: usize) -> bool {
    bitmap
        .get(index / 8)
        .is_some_and(|byte| byte & (1 << (index % 8)) != 0)
}

/// Whether `signed` is more than two thirds of `total`, CometBFT's commit rule.
pub fn is_quorum(signed: u128, total: u128) -> bool {
    signed.saturating_mul(3) > total.saturating_mul(2)
}

impl Certificate {
    /// Aggregates `signatures`, each the signature of the member at its index in a set of
    /// `members`. The caller verified each signature and deduplicated the indices (a
    /// duplicate would be counted once in the bitmap and twice in the aggregate, which then
    /// fails to verify).
    pub fn aggregate(members: usize, signatures: &[(usize, BlsSignature)]) -> Option<Self> {
        let mut signers = vec![0u8; bitmap_bytes(members)];
        let mut parts: Vec<&Signature> = Vec::with_capacity(signatures.len());
        for (index, signature) in signatures {
            let byte = signers.get_mut(index / 8)?;
            if *index >= members {
                return None;
            }
            *byte |= 1 << (index % 8);
            parts.push(&signature.0);
        }
        let aggregate = AggregateSignature::aggregate(&parts, false).ok()?;
        Some(Self {
            signers,
            signature: BlsSignature(aggregate.to_signature()),
        })
    }

    /// The indices of the members it names.
    pub fn signer_indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.signers.len() * 8).filter(|i| is_set(&self.signers, *i))
    }

    /// Checks that more than two thirds of `set`'s power signed `message`; returns the power
    /// that signed.
    pub fn verify(&self, set: &[Signer], message: &[u8]) -> Result<u128, CertificateError> {
        let bitmap_error = CertificateError::Bitmap {
            members: set.len(),
            got: self.signers.len(),
        };
        if self.signers.len() != bitmap_bytes(set.len()) {
            return Err(bitmap_error);
        }
        if self.signer_indices().any(|i| i >= set.len()) {
            return Err(bitmap_error);
        }
        let total: u128 = set.iter().map(|s| u128::from(s.power)).sum();
        let mut signed = 0u128;
        let mut keys: Vec<&PublicKey> = Vec::with_capacity(set.len());
        for index in self.signer_indices() {
            signed += u128::from(set[index].power);
            keys.push(set[index].key.inner());
        }
        if !is_quorum(signed, total) {
            return Err(CertificateError::BelowQuorum { signed, total });
        }
        // Keys were subgroup-checked and their possession proven at registration.
        match self
            .signature
            .0
            .fast_aggregate_verify(false, message, SIGNATURE_DST, &keys)
        {
            BLST_ERROR::BLST_SUCCESS => Ok(signed),
            _ => Err(CertificateError::Signature(BlsError::Invalid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bls::BlsSecretKey;

    fn set(powers: &[u64]) -> (Vec<BlsSecretKey>, Vec<Signer>) {
        let secrets: Vec<BlsSecretKey> = (0..powers.len())
            .map(|i| BlsSecretKey::from_seed(&[i as u8 + 1; 32]).unwrap())
            .collect();
        let signers = secrets
            .iter()
            .zip(powers)
            .map(|(secret, power)| Signer {
                key: secret.public_key(),
                power: *power,
            })
            .collect();
        (secrets, signers)
    }

    fn certify(secrets: &[BlsSecretKey], who: &[usize], message: &[u8]) -> Certificate {
        let signatures: Vec<(usize, BlsSignature)> = who
            .iter()
            .map(|i| (*i, secrets[*i].sign(message)))
            .collect();
        Certificate::aggregate(secrets.len(), &signatures).unwrap()
    }

    #[test]
    fn more_than_two_thirds_of_the_power_certifies() {
        let (secrets, members) = set(&[1, 1, 1, 1]);
        let three = certify(&secrets, &[0, 1, 3], b"m");
        assert_eq!(three.verify(&members, b"m"), Ok(3));
        assert_eq!(three.signers, vec![0b1011]);
        let two = certify(&secrets, &[0, 1], b"m");
        assert_eq!(
            two.verify(&members, b"m"),
            Err(CertificateError::BelowQuorum {
                signed: 2,
                total: 4
            })
        );
        // Exactly two thirds is not enough.
        let (secrets, members) = set(&[2, 2, 2]);
        assert!(matches!(
            certify(&secrets, &[0, 1], b"m").verify(&members, b"m"),
            Err(CertificateError::BelowQuorum {
                signed: 4,
                total: 6
            })
        ));
        // Power, not heads: one heavy validator is a quorum alone.
        let (secrets, members) = set(&[10, 1, 1, 1]);
        assert_eq!(certify(&secrets, &[0], b"m").verify(&members, b"m"), Ok(10));
    }

    #[test]
    fn forged_certificates_fail() {
        let (secrets, members) = set(&[1, 1, 1, 1]);
        let good = certify(&secrets, &[0, 1, 2], b"m");
        assert!(matches!(
            good.verify(&members, b"other"),
            Err(CertificateError::Signature(_))
        ));
        // The bitmap claims a member who did not sign.
        let mut wrong_bitmap = good.clone();
        wrong_bitmap.signers = vec![0b1111];
        assert!(matches!(
            wrong_bitmap.verify(&members, b"m"),
            Err(CertificateError::Signature(_))
        ));
        wrong_bitmap.signers = vec![0b0111, 0];
        assert!(matches!(
            wrong_bitmap.verify(&members, b"m"),
            Err(CertificateError::Bitmap { .. })
        ));
        wrong_bitmap.signers = vec![0b1_0111];
        assert!(matches!(
            wrong_bitmap.verify(&members, b"m"),
            Err(CertificateError::Bitmap { .. })
        ));
        // One signature counted twice cannot stand in for a third signer.
        let twice = Certificate::aggregate(
            4,
            &[
                (0, secrets[0].sign(b"m")),
                (0, secrets[0].sign(b"m")),
                (1, secrets[1].sign(b"m")),
            ],
        )
        .unwrap();
        assert!(twice.verify(&members, b"m").is_err());
        // A signer outside the set cannot be named.
        assert!(Certificate::aggregate(4, &[(4, secrets[0].sign(b"m"))]).is_none());
    }
}
