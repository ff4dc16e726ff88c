//! What a level-1 subnet exchanges with its parent, the RSK gateway.
//!
//! - Bottom-up, the gateway verifies raw secp256k1 ECDSA signatures in Ethereum's form
//!   (`r ‖ s ‖ v`, `v` 27 or 28, low `s`) over the checkpoint digest: [`GatewaySignature`].
//! - Top-down, RSK cannot be light-client verified by a subnet, so the subnet's validators
//!   attest what they read from RSK at the confirmation depth: an [`RskPoint`] (a height
//!   rounded down to the attestation step, its block hash, and the chained digest of the
//!   gateway's `Funded` events for this subnet up to it), BLS-signed in their vote extensions.
//!   A quorum certificate over one point, injected with the deposits it covers
//!   ([`RskUpdate`]), is what mints RBTC in the subnet.

use borsh::{BorshDeserialize, BorshSerialize};
use secp256k1::SecretKey;

use ipsat_checkpoint::{keccak256, BlsSignature, Certificate, SubnetHash};

use crate::error::TxError;
use crate::tx::{recover_signer, sign_recoverable};
use crate::types::{Address, Amount};

/// Bytes of a gateway signature.
pub const GATEWAY_SIGNATURE_BYTES: usize = 65;

/// Domain tag of an RSK attestation.
const ATTESTATION_TAG: &[u8] = b"ipsat/rsk-attestation/v1";

/// Most deposits one [`RskUpdate`] may carry, so an update stays well inside a block.
pub const MAX_DEPOSITS_PER_UPDATE: usize = 256;

/// A validator's signature of a checkpoint digest in the form the gateway's `ecrecover`
/// loop accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewaySignature(pub [u8; GATEWAY_SIGNATURE_BYTES]);

impl GatewaySignature {
    /// Signs `digest` with `key`; the `secp256k1` crate always produces low `s`.
    pub fn sign(key: &SecretKey, digest: &[u8; 32]) -> Self {
        let mut signature = sign_recoverable(key, digest);
        signature[64] += 27;
        Self(signature)
    }

    /// The signature from untrusted bytes: 65 of them, `v` 27 or 28.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TxError> {
        let array: [u8; GATEWAY_SIGNATURE_BYTES] = bytes
            .try_into()
            .map_err(|_| TxError::InvalidSignature("a gateway signature is 65 bytes"))?;
        if !matches!(array[64], 27 | 28) {
            return Err(TxError::InvalidSignature(
                "gateway signature v must be 27 or 28",
            ));
        }
        Ok(Self(array))
    }

    /// The address whose key signed `digest`, refusing high `s` as the gateway does.
    pub fn signer(&self, digest: &[u8; 32]) -> Result<Address, TxError> {
        let mut raw = self.0;
        raw[64] -= 27;
        recover_signer(&raw, digest)
    }
}

/// A point of RSK as a subnet's validators read it at the confirmation depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct RskPoint {
    /// An RSK height, a multiple of the attestation step.
    pub height: u64,
    /// The hash of the RSK block at `height`.
    pub block_hash: [u8; 32],
    /// How many `Funded` events for this subnet the gateway had emitted up to `height`.
    pub deposit_count: u64,
    /// [`chain_deposit`] over those events, from zero.
    pub deposits_digest: [u8; 32],
}

impl RskPoint {
    /// What validators BLS-sign for `subnet`: bound to the subnet so an attestation for one
    /// subnet means nothing in another.
    pub fn signing_bytes(&self, subnet: &SubnetHash) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(ATTESTATION_TAG.len() + 32 * 3 + 16);
        bytes.extend_from_slice(ATTESTATION_TAG);
        bytes.extend_from_slice(&subnet.0);
        bytes.extend_from_slice(&self.height.to_be_bytes());
        bytes.extend_from_slice(&self.block_hash);
        bytes.extend_from_slice(&self.deposit_count.to_be_bytes());
        bytes.extend_from_slice(&self.deposits_digest);
        keccak256(&bytes)
    }
}

/// A `Funded(subnetId, recipient, amount, nonce)` event of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RskDeposit {
    /// Who is credited in the subnet.
    pub recipient: Address,
    /// In atto-RBTC (wei).
    pub amount: Amount,
    /// The event's number for its subnet: 0, 1, 2, ...
    pub nonce: u64,
}

/// The deposits digest after `deposit`: `keccak256(previous ‖ recipient ‖ u128be(amount) ‖
/// u64be(nonce))`. Chaining makes the digest at a point commit to every deposit before it.
pub fn chain_deposit(previous: &[u8; 32], deposit: &RskDeposit) -> [u8; 32] {
    let mut bytes = [0u8; 32 + 20 + 16 + 8];
    bytes[..32].copy_from_slice(previous);
    bytes[32..52].copy_from_slice(&deposit.recipient.0);
    bytes[52..68].copy_from_slice(&deposit.amount.atto().to_be_bytes());
    bytes[68..].copy_from_slice(&deposit.nonce.to_be_bytes());
    keccak256(&bytes)
}

/// A validator's attestation in its vote extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RskAttestation {
    /// What it read.
    pub point: RskPoint,
    /// Its BLS signature of [`RskPoint::signing_bytes`].
    pub signature: BlsSignature,
}

/// A quorum's attestation of `point` and the deposits between the subnet's last attested
/// point and it, in nonce order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RskUpdate {
    /// The attested point.
    pub point: RskPoint,
    /// The signing set's certificate over it.
    pub certificate: Certificate,
    /// The deposits with nonces from the last attested count up to `point.deposit_count`.
    pub deposits: Vec<RskDeposit>,
}

impl RskUpdate {
    /// Checks that `deposits` extend the digest `from` (after `from_count` deposits) exactly
    /// to the point's count and digest.
    pub fn check_deposits(&self, from_count: u64, from: &[u8; 32]) -> Result<(), TxError> {
        let mut digest = *from;
        for (deposit, nonce) in self.deposits.iter().zip(from_count..) {
            if deposit.nonce != nonce {
                return Err(TxError::TopDownOutOfOrder {
                    expected: nonce,
                    got: deposit.nonce,
                });
            }
            digest = chain_deposit(&digest, deposit);
        }
        let count = from_count + self.deposits.len() as u64;
        if count != self.point.deposit_count || digest != self.point.deposits_digest {
            return Err(TxError::TopDownProof(format!(
                "{} deposits from {from_count} do not reach the attested count {} and digest",
                self.deposits.len(),
                self.point.deposit_count
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_signatures_recover_and_refuse_tampering() {
        let key = SecretKey::from_slice(&[7; 32]).unwrap();
        let signer = crate::tx::address_of(&key.public_key(&secp256k1::Secp256k1::new()));
        let digest = [9u8; 32];
        let signature = GatewaySignature::sign(&key, &digest);
        assert!(matches!(signature.0[64], 27 | 28));
        assert_eq!(signature.signer(&digest).unwrap(), signer);
        assert_ne!(signature.signer(&[8; 32]).ok(), Some(signer));
        let mut bad_v = signature.0;
        bad_v[64] = 1;
        assert!(GatewaySignature::from_bytes(&bad_v).is_err());
        assert!(GatewaySignature::from_bytes(&signature.0[..64]).is_err());
    }

    #[test]
    fn deposits_must_chain_to_the_attested_digest() {
        let deposits: Vec<RskDeposit> = (3..6)
            .map(|nonce| RskDeposit {
                recipient: Address([nonce as u8; 20]),
                amount: Amount::from_atto(1_000 * u128::from(nonce)),
                nonce,
            })
            .collect();
        let start = [1u8; 32];
        let digest = deposits.iter().fold(start, |d, e| chain_deposit(&d, e));
        let update = |deposits: Vec<RskDeposit>| RskUpdate {
            point: RskPoint {
                height: 40,
                block_hash: [2; 32],
                deposit_count: 6,
                deposits_digest: digest,
            },
            certificate: Certificate {
                signers: vec![1],
                signature: ipsat_checkpoint::BlsSecretKey::from_seed(&[1; 32])
                    .unwrap()
                    .sign(b"unused"),
            },
            deposits,
        };
        assert!(update(deposits.clone()).check_deposits(3, &start).is_ok());
        assert!(update(deposits.clone()).check_deposits(2, &start).is_err());
        let mut inflated = deposits.clone();
        inflated[1].amount = Amount::from_atto(1);
        assert!(update(inflated).check_deposits(3, &start).is_err());
        assert!(update(deposits[..2].to_vec())
            .check_deposits(3, &start)
            .is_err());
        let mut reordered = deposits;
        reordered.swap(0, 1);
        assert!(update(reordered).check_deposits(3, &start).is_err());
    }
}
