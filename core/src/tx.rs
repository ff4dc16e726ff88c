//! Signed transactions: encoding, signing and stateless verification.
//!
//! The signature domain is `keccak256("ipsat/tx/v1" || u32be(len(subnet)) || subnet || body)`,
//! so a transaction signed for one subnet never verifies in another. Signatures must be
//! low-s, so every transaction has exactly one valid encoding and one hash.

use std::sync::LazyLock;

use ipsat_proto::v1 as pb;
use prost::Message as _;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{All, Message, PublicKey, Secp256k1, SecretKey};
use sha2::Digest as _;
use sha3::Keccak256;

use crate::action::Action;
use crate::error::TxError;
use crate::types::{Address, Amount, SubnetId};

/// Largest encoded transaction a subnet accepts.
pub const MAX_TX_BYTES: usize = 128 * 1024;

const SIGNATURE_DOMAIN: &[u8] = b"ipsat/tx/v1";

static SECP: LazyLock<Secp256k1<All>> = LazyLock::new(Secp256k1::new);

/// SHA-256 of the raw bytes: the same hash CometBFT reports for the transaction.
pub type TxHash = [u8; 32];

/// The hash CometBFT and clients know a transaction by.
pub fn tx_hash(raw: &[u8]) -> TxHash {
    sha2::Sha256::digest(raw).into()
}

/// Keccak-256, as Ethereum and RSK use it.
pub use ipsat_checkpoint::keccak256;

/// The Ethereum-style address of a public key.
pub fn address_of(public_key: &PublicKey) -> Address {
    let uncompressed = public_key.serialize_uncompressed();
    let digest = keccak256(&uncompressed[1..]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest[12..]);
    Address(address)
}

fn signing_digest(subnet: &SubnetId, body: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(SIGNATURE_DOMAIN);
    hasher.update((subnet.as_str().len() as u32).to_be_bytes());
    hasher.update(subnet.as_str().as_bytes());
    hasher.update(body);
    hasher.finalize().into()
}

/// Encodes and signs `body` for `subnet` (the subnet must match `body.subnet_id`).
pub fn sign(secret: &SecretKey, subnet: &SubnetId, body: &pb::TxBody) -> Vec<u8> {
    let body = body.encode_to_vec();
    let signature = sign_recoverable(secret, &signing_digest(subnet, &body)).to_vec();
    pb::Tx { body, signature }.encode_to_vec()
}

/// `r ‖ s ‖ recovery id` (0 or 1) of `digest`; `s` is always low.
pub(crate) fn sign_recoverable(secret: &SecretKey, digest: &[u8; 32]) -> [u8; 65] {
    let (recovery_id, compact) = SECP
        .sign_ecdsa_recoverable(&Message::from_digest(*digest), secret)
        .serialize_compact();
    let mut signature = [0u8; 65];
    signature[..64].copy_from_slice(&compact);
    signature[64] = recovery_id.to_i32() as u8;
    signature
}

/// A transaction whose encoding, subnet, signature, fee syntax and message have passed every
/// check that needs no state.
#[derive(Debug, Clone)]
pub struct VerifiedTx {
    /// SHA-256 of the raw bytes.
    pub hash: TxHash,
    /// The signer, which is the body's `from`.
    pub sender: Address,
    /// Must equal the sender's account nonce when the transaction executes.
    pub nonce: u64,
    /// Offered fee, taken before the message runs.
    pub fee: Amount,
    /// The message, validated.
    pub action: Action,
    /// Encoded size, which the minimum fee is charged on.
    pub size: usize,
}

/// Decodes `raw` and checks everything that needs no state.
pub fn verify(raw: &[u8], subnet: &SubnetId) -> Result<VerifiedTx, TxError> {
    if raw.len() > MAX_TX_BYTES {
        return Err(TxError::TxTooLarge {
            max: MAX_TX_BYTES,
            got: raw.len(),
        });
    }
    let tx = pb::Tx::decode(raw).map_err(|e| TxError::Malformed(format!("tx: {e}")))?;
    let body = pb::TxBody::decode(tx.body.as_slice())
        .map_err(|e| TxError::Malformed(format!("body: {e}")))?;
    // Prost skips unknown fields and accepts repeated fields and long varints, so a third
    // party could re-encode someone's transaction into a valid twin with another hash. Only
    // the one canonical encoding (what re-encoding the decoded value gives) is accepted.
    if tx.encoded_len() != raw.len() || tx.encode_to_vec() != raw {
        return Err(TxError::Malformed(
            "not the canonical encoding of the Tx".into(),
        ));
    }
    if body.encode_to_vec() != tx.body {
        return Err(TxError::Malformed(
            "not the canonical encoding of the TxBody".into(),
        ));
    }
    if body.subnet_id != subnet.as_str() {
        return Err(TxError::WrongSubnet {
            expected: subnet.to_string(),
            got: body.subnet_id,
        });
    }
    let from = Address::from_slice(&body.from)
        .map_err(|_| TxError::Malformed("from must be 20 bytes".into()))?;
    let fee: Amount = body
        .fee
        .parse()
        .map_err(|_| TxError::InvalidAmount(format!("fee {:?}", body.fee)))?;
    let action = Action::try_from(
        body.msg
            .ok_or_else(|| TxError::Malformed("no message".into()))?,
    )?;
    let signer = recover_signer(&tx.signature, &signing_digest(subnet, &tx.body))?;
    if signer != from {
        return Err(TxError::InvalidSignature("signer is not the sender"));
    }
    Ok(VerifiedTx {
        hash: tx_hash(raw),
        sender: from,
        nonce: body.nonce,
        fee,
        action,
        size: raw.len(),
    })
}

/// The address that signed `digest` with `r ‖ s ‖ recovery id`, refusing high `s`.
pub(crate) fn recover_signer(signature: &[u8], digest: &[u8; 32]) -> Result<Address, TxError> {
    let [compact @ .., recovery] = signature else {
        return Err(TxError::InvalidSignature("empty"));
    };
    if signature.len() != 65 {
        return Err(TxError::InvalidSignature("expected 65 bytes"));
    }
    let recovery_id = RecoveryId::from_i32(i32::from(*recovery))
        .map_err(|_| TxError::InvalidSignature("bad recovery id"))?;
    let recoverable = RecoverableSignature::from_compact(compact, recovery_id)
        .map_err(|_| TxError::InvalidSignature("not a valid r, s pair"))?;
    let standard = recoverable.to_standard();
    let mut normalized = standard;
    normalized.normalize_s();
    if normalized != standard {
        return Err(TxError::InvalidSignature("high s"));
    }
    let public_key = SECP
        .recover_ecdsa(&Message::from_digest(*digest), &recoverable)
        .map_err(|_| TxError::InvalidSignature("does not recover to a key"))?;
    Ok(address_of(&public_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsat_proto::v1::tx_body::Msg;

    fn subnet() -> SubnetId {
        "/r33/alpha".parse().unwrap()
    }

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_slice(&[byte; 32]).unwrap()
    }

    fn transfer_body(from: Address, subnet: &SubnetId) -> pb::TxBody {
        pb::TxBody {
            subnet_id: subnet.to_string(),
            from: from.0.to_vec(),
            nonce: 0,
            fee: "1000".into(),
            msg: Some(Msg::Transfer(pb::Transfer {
                to: vec![9; 20],
                amount: "5".into(),
            })),
        }
    }

    fn sender(secret: &SecretKey) -> Address {
        address_of(&PublicKey::from_secret_key(&SECP, secret))
    }

    #[test]
    fn signed_tx_verifies_and_any_flipped_byte_fails() {
        let sk = key(1);
        let raw = sign(&sk, &subnet(), &transfer_body(sender(&sk), &subnet()));
        let tx = verify(&raw, &subnet()).unwrap();
        assert_eq!(tx.sender, sender(&sk));
        assert_eq!(tx.fee, Amount::from_atto(1000));
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = raw.clone();
                bad[i] ^= bit;
                assert!(verify(&bad, &subnet()).is_err(), "byte {i} bit {bit:#x}");
            }
        }
    }

    #[test]
    fn only_the_canonical_encoding_is_accepted() {
        let sk = key(5);
        let raw = sign(&sk, &subnet(), &transfer_body(sender(&sk), &subnet()));
        verify(&raw, &subnet()).unwrap();
        // An unknown field 3 of Tx appended: same signature, another hash.
        let unknown_field = [raw.as_slice(), &[0x18, 0x00]].concat();
        // The signature field repeated: prost keeps the last one.
        let tx = pb::Tx::decode(raw.as_slice()).unwrap();
        let mut repeated = raw.clone();
        pb::Tx {
            body: Vec::new(),
            signature: tx.signature.clone(),
        }
        .encode(&mut repeated)
        .unwrap();
        // The body's nonce (field 3, 0) written explicitly, as proto3 encoders must not.
        let mut body = tx.body.clone();
        body.extend_from_slice(&[0x18, 0x00]);
        let padded_body = pb::Tx {
            body,
            signature: tx.signature.clone(),
        }
        .encode_to_vec();
        // A non-minimal varint for the body's length.
        let mut long_varint = vec![0x0a, 0x80 | raw[1], 0x00];
        long_varint.extend_from_slice(&raw[2..]);
        for twin in [unknown_field, repeated, padded_body, long_varint] {
            assert_ne!(tx_hash(&twin), tx_hash(&raw));
            assert!(
                matches!(verify(&twin, &subnet()), Err(TxError::Malformed(_))),
                "{}",
                hex::encode(&twin)
            );
        }
    }

    #[test]
    fn signature_is_bound_to_the_subnet() {
        let sk = key(2);
        let other: SubnetId = "/r33/beta".parse().unwrap();
        // Signed for beta and claiming beta: refused in alpha by its subnet field.
        let raw = sign(&sk, &other, &transfer_body(sender(&sk), &other));
        assert!(matches!(
            verify(&raw, &subnet()),
            Err(TxError::WrongSubnet { .. })
        ));
        // Signed for beta but claiming alpha: the domain differs, so the signature fails.
        let raw = sign(&sk, &other, &transfer_body(sender(&sk), &subnet()));
        assert!(matches!(
            verify(&raw, &subnet()),
            Err(TxError::InvalidSignature(_))
        ));
    }

    #[test]
    fn wrong_sender_high_s_and_garbage_are_refused() {
        let sk = key(3);
        let raw = sign(&sk, &subnet(), &transfer_body(sender(&key(4)), &subnet()));
        assert_eq!(
            verify(&raw, &subnet()).unwrap_err(),
            TxError::InvalidSignature("signer is not the sender")
        );

        let raw = sign(&sk, &subnet(), &transfer_body(sender(&sk), &subnet()));
        let mut tx = pb::Tx::decode(raw.as_slice()).unwrap();
        let mut sig = RecoverableSignature::from_compact(
            &tx.signature[..64],
            RecoveryId::from_i32(tx.signature[64].into()).unwrap(),
        )
        .unwrap()
        .serialize_compact()
        .1;
        // s' = n - s is the malleated twin of a valid signature.
        let order = secp256k1::constants::CURVE_ORDER;
        let mut borrow = 0i16;
        for i in (32..64).rev() {
            let v = i16::from(order[i - 32]) - i16::from(sig[i]) - borrow;
            borrow = i16::from(v < 0);
            sig[i] = v.rem_euclid(256) as u8;
        }
        tx.signature[..64].copy_from_slice(&sig);
        tx.signature[64] ^= 1;
        assert_eq!(
            verify(&tx.encode_to_vec(), &subnet()).unwrap_err(),
            TxError::InvalidSignature("high s")
        );

        assert!(matches!(
            verify(b"\xff\xff\xff", &subnet()),
            Err(TxError::Malformed(_))
        ));
        assert!(matches!(
            verify(&vec![0u8; MAX_TX_BYTES + 1], &subnet()),
            Err(TxError::TxTooLarge { .. })
        ));
    }
}
