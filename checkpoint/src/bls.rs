//! BLS12-381 keys and signatures of checkpoint signers (`blst`, public keys in G1, the
//! proof-of-possession ciphersuite).
//!
//! A public key becomes a [`BlsPublicKey`] only after it is checked to be a point of the
//! prime-order subgroup other than infinity, and a signer's key is used in an aggregate only
//! after its proof of possession verified, once, when it was registered: that is what makes
//! same-message aggregation (FastAggregateVerify) safe against rogue-key attacks.

use std::fmt;

use blst::min_pk::{PublicKey, SecretKey, Signature};
use blst::BLST_ERROR;

/// Domain separation tag of checkpoint signatures (the POP ciphersuite's signing tag).
pub const SIGNATURE_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Domain separation tag of proofs of possession.
pub const POP_DST: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Bytes of a compressed public key.
pub const PUBLIC_KEY_BYTES: usize = 48;
/// Bytes of an uncompressed public key, as state stores it (no square root to read it back).
pub const PUBLIC_KEY_UNCOMPRESSED_BYTES: usize = 96;
/// Bytes of a compressed signature.
pub const SIGNATURE_BYTES: usize = 96;

/// Why BLS bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    /// Not the encoding of a curve point of the expected size.
    #[error("not an encoded BLS12-381 point")]
    Encoding,
    /// The point at infinity, which would let anyone forge.
    #[error("the BLS key or signature is the point at infinity")]
    Infinity,
    /// On the curve but outside the prime-order subgroup.
    #[error("the BLS point is not in the prime-order subgroup")]
    NotInSubgroup,
    /// The signature does not verify.
    #[error("the BLS signature does not verify")]
    Invalid,
    /// Key material shorter than 32 bytes.
    #[error("a BLS secret key needs 32 bytes of key material")]
    KeyMaterial,
}

fn classify(error: BLST_ERROR) -> BlsError {
    match error {
        BLST_ERROR::BLST_PK_IS_INFINITY => BlsError::Infinity,
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => BlsError::NotInSubgroup,
        BLST_ERROR::BLST_VERIFY_FAIL => BlsError::Invalid,
        _ => BlsError::Encoding,
    }
}

/// A validator's signing key. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct BlsSecretKey(SecretKey);

impl fmt::Debug for BlsSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlsSecretKey(..)")
    }
}

impl BlsSecretKey {
    /// Derives a key from at least 32 bytes of secret key material (IETF KeyGen).
    pub fn from_seed(seed: &[u8]) -> Result<Self, BlsError> {
        SecretKey::key_gen(seed, &[])
            .map(Self)
            .map_err(|_| BlsError::KeyMaterial)
    }

    /// Reads the 32-byte big-endian scalar written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        SecretKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| BlsError::Encoding)
    }

    /// The 32-byte scalar, for the key file only.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> BlsPublicKey {
        BlsPublicKey(self.0.sk_to_pk())
    }

    /// Signs a 32-byte digest.
    pub fn sign(&self, message: &[u8]) -> BlsSignature {
        BlsSignature(self.0.sign(message, SIGNATURE_DST, &[]))
    }

    /// Proves possession of this key: a signature of the compressed public key under the
    /// proof-of-possession tag.
    pub fn proof_of_possession(&self) -> BlsSignature {
        let public = self.public_key().to_compressed();
        BlsSignature(self.0.sign(&public, POP_DST, &[]))
    }
}

/// A public key known to be in the prime-order subgroup and not infinity.
#[derive(Clone, PartialEq, Eq)]
pub struct BlsPublicKey(PublicKey);

impl fmt::Debug for BlsPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsPublicKey({})", hex::encode(self.to_compressed()))
    }
}

impl BlsPublicKey {
    /// Parses and validates a compressed key from outside: encoding, subgroup, not infinity.
    pub fn from_compressed(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != PUBLIC_KEY_BYTES {
            return Err(BlsError::Encoding);
        }
        PublicKey::key_validate(bytes).map(Self).map_err(classify)
    }

    /// Reads a key written by [`Self::to_uncompressed`] into this node's own state, where
    /// only validated keys are ever written; the subgroup check is skipped because it was done
    /// at registration and costs as much as a signature check.
    pub fn from_trusted_uncompressed(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != PUBLIC_KEY_UNCOMPRESSED_BYTES {
            return Err(BlsError::Encoding);
        }
        PublicKey::deserialize(bytes).map(Self).map_err(classify)
    }

    /// The 48-byte compressed form, as keys travel.
    pub fn to_compressed(&self) -> [u8; PUBLIC_KEY_BYTES] {
        self.0.compress()
    }

    /// The 96-byte uncompressed form, as state stores keys.
    pub fn to_uncompressed(&self) -> [u8; PUBLIC_KEY_UNCOMPRESSED_BYTES] {
        self.0.serialize()
    }

    /// Checks a proof of possession of this key.
    pub fn verify_possession(&self, proof: &BlsSignature) -> Result<(), BlsError> {
        let public = self.to_compressed();
        check(proof.0.verify(true, &public, POP_DST, &[], &self.0, false))
    }

    /// Checks this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &BlsSignature) -> Result<(), BlsError> {
        check(
            signature
                .0
                .verify(true, message, SIGNATURE_DST, &[], &self.0, false),
        )
    }

    pub(crate) fn inner(&self) -> &PublicKey {
        &self.0
    }
}

fn check(result: BLST_ERROR) -> Result<(), BlsError> {
    match result {
        BLST_ERROR::BLST_SUCCESS => Ok(()),
        other => Err(classify(other)),
    }
}

/// A signature (individual or aggregate), validated to be in the subgroup when parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct BlsSignature(pub(crate) Signature);

impl fmt::Debug for BlsSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsSignature({})", hex::encode(self.to_bytes()))
    }
}

impl BlsSignature {
    /// Parses a compressed signature from outside, refusing points outside the subgroup.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        if bytes.len() != SIGNATURE_BYTES {
            return Err(BlsError::Encoding);
        }
        Signature::sig_validate(bytes, true)
            .map(Self)
            .map_err(classify)
    }

    /// The 96-byte compressed form.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        self.0.compress()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> BlsSecretKey {
        BlsSecretKey::from_seed(&[n; 32]).unwrap()
    }

    #[test]
    fn signatures_and_possession_proofs_verify_only_for_their_key_and_message() {
        let (alice, bob) = (key(1), key(2));
        let signature = alice.sign(b"digest");
        let public = alice.public_key();
        assert_eq!(public.verify(b"digest", &signature), Ok(()));
        assert_eq!(public.verify(b"other", &signature), Err(BlsError::Invalid));
        assert_eq!(
            bob.public_key().verify(b"digest", &signature),
            Err(BlsError::Invalid)
        );
        assert_eq!(
            public.verify_possession(&alice.proof_of_possession()),
            Ok(())
        );
        assert_eq!(
            public.verify_possession(&bob.proof_of_possession()),
            Err(BlsError::Invalid)
        );
        // A signature of the key under the signing tag is not a proof of possession.
        let wrong_tag = alice.sign(&public.to_compressed());
        assert_eq!(public.verify_possession(&wrong_tag), Err(BlsError::Invalid));
    }

    #[test]
    fn keys_round_trip_and_bad_points_are_refused() {
        let public = key(3).public_key();
        assert_eq!(
            BlsPublicKey::from_compressed(&public.to_compressed()),
            Ok(public.clone())
        );
        assert_eq!(
            BlsPublicKey::from_trusted_uncompressed(&public.to_uncompressed()),
            Ok(public)
        );
        // The compressed point at infinity: flag bits 0xc0 and zeros.
        let mut infinity = [0u8; 48];
        infinity[0] = 0xc0;
        assert_eq!(
            BlsPublicKey::from_compressed(&infinity),
            Err(BlsError::Infinity)
        );
        assert_eq!(
            BlsPublicKey::from_compressed(&[0u8; 47]),
            Err(BlsError::Encoding)
        );
        assert_eq!(
            BlsPublicKey::from_compressed(&not_in_subgroup()),
            Err(BlsError::NotInSubgroup)
        );
    }

    /// A compressed point on the curve y² = x³ + 4 outside the prime-order subgroup: the
    /// first x (from 0 up) with a square right-hand side gives one, since the subgroup is a
    /// vanishing fraction of the curve.
    fn not_in_subgroup() -> [u8; 48] {
        for x in 0u8..=255 {
            let mut bytes = [0u8; 48];
            bytes[0] = 0x80;
            bytes[47] = x;
            if PublicKey::uncompress(&bytes).is_ok() {
                return bytes;
            }
        }
        panic!("no curve point with a small x");
    }

    #[test]
    fn secret_keys_round_trip_and_never_print() {
        let secret = key(4);
        let again = BlsSecretKey::from_bytes(&secret.to_bytes()).unwrap();
        assert_eq!(again.public_key(), secret.public_key());
        assert_eq!(format!("{secret:?}"), "BlsSecretKey(..)");
        assert_eq!(
            BlsSecretKey::from_seed(&[0; 31]).unwrap_err(),
            BlsError::KeyMaterial
        );
    }
}
