//! Building, signing and offline verification of the anchor transaction.
//!
//! Shape: version 2, locktime 0, one input per UTXO of the anchorer (usually one: the previous
//! anchor's change; more after a top-up), each with sequence `0xfffffffd` so it signals BIP125
//! replace-by-fee; outputs `[OP_RETURN <digest> (0 sat), change to self]`.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::key::{CompressedPublicKey, Keypair, TapTweak};
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use serde::{Deserialize, Serialize};

use crate::digest::anchor_script;

/// Errors while building or checking an anchor transaction.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error(
        "the anchorer's {inputs} output(s) hold {value} but the anchor needs the fee {fee} plus a \
         change output of at least {dust} (dust limit): add funds"
    )]
    InsufficientFunds {
        inputs: usize,
        value: Amount,
        fee: Amount,
        dust: Amount,
    },
    #[error("UTXO {outpoint} pays to {found}, not to this anchorer's script {expected}")]
    NotOurScript {
        outpoint: OutPoint,
        found: ScriptBuf,
        expected: ScriptBuf,
    },
    #[error("fee rate must be at least 1 sat/vB, got {0}")]
    ZeroFeeRate(u64),
    #[error("fee overflow: {rate} sat/vB x {vsize} vB")]
    FeeOverflow { rate: u64, vsize: u64 },
    #[error("computing the sighash: {0}")]
    Sighash(String),
    #[error("libbitcoinconsensus rejected the signed anchor transaction {txid}: {reason}")]
    Consensus { txid: bitcoin::Txid, reason: String },
    #[error("transaction {txid} does not spend exactly the given outputs, in order")]
    WrongInputs { txid: bitcoin::Txid },
}

/// Which output type the anchorer's key controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptKind {
    /// Native segwit v0, pay-to-witness-public-key-hash.
    P2wpkh,
    /// Taproot, spent by the key path (BIP86-style tweak with no script tree).
    P2tr,
}

/// The anchorer's signing key and the script it controls.
pub struct AnchorKey {
    secret: SecretKey,
    kind: ScriptKind,
    secp: Secp256k1<All>,
}

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorKey")
            .field("kind", &self.kind)
            .field("script_pubkey", &self.script_pubkey())
            .finish_non_exhaustive()
    }
}

impl AnchorKey {
    /// A key controlling a `kind` output.
    pub fn new(secret: SecretKey, kind: ScriptKind) -> Self {
        AnchorKey {
            secret,
            kind,
            secp: Secp256k1::new(),
        }
    }

    /// The output type.
    pub fn kind(&self) -> ScriptKind {
        self.kind
    }

    fn compressed_pubkey(&self) -> CompressedPublicKey {
        CompressedPublicKey(self.secret.public_key(&self.secp))
    }

    /// The script this key spends, which also receives the change.
    pub fn script_pubkey(&self) -> ScriptBuf {
        match self.kind {
            ScriptKind::P2wpkh => ScriptBuf::new_p2wpkh(&self.compressed_pubkey().wpubkey_hash()),
            ScriptKind::P2tr => {
                let (xonly, _) = self.secret.x_only_public_key(&self.secp);
                ScriptBuf::new_p2tr(&self.secp, xonly, None)
            }
        }
    }

    /// The address of [`Self::script_pubkey`] on `network`.
    pub fn address(&self, network: Network) -> Address {
        match self.kind {
            ScriptKind::P2wpkh => Address::p2wpkh(&self.compressed_pubkey(), network),
            ScriptKind::P2tr => {
                let (xonly, _) = self.secret.x_only_public_key(&self.secp);
                Address::p2tr(&self.secp, xonly, None, network)
            }
        }
    }

    /// Signs input `index` of `tx`, whose inputs spend `prevouts` in order (taproot signs
    /// them all; segwit v0 only the one spent here).
    fn sign_input(
        &self,
        tx: &mut Transaction,
        index: usize,
        prevouts: &[TxOut],
    ) -> Result<(), TxError> {
        let prevout = prevouts
            .get(index)
            .ok_or_else(|| TxError::Sighash(format!("no spent output for input {index}")))?;
        let mut cache = SighashCache::new(&mut *tx);
        let witness = match self.kind {
            ScriptKind::P2wpkh => {
                let sighash = cache
                    .p2wpkh_signature_hash(
                        index,
                        &prevout.script_pubkey,
                        prevout.value,
                        EcdsaSighashType::All,
                    )
                    .map_err(|e| TxError::Sighash(e.to_string()))?;
                let msg = Message::from_digest(sighash.to_byte_array());
                // Low-R grinding keeps the DER signature at <= 71 bytes, so the vsize is stable.
                let signature = self.secp.sign_ecdsa_low_r(&msg, &self.secret);
                let sig = bitcoin::ecdsa::Signature {
                    signature,
                    sighash_type: EcdsaSighashType::All,
                };
                Witness::p2wpkh(&sig, &self.compressed_pubkey().0)
            }
            ScriptKind::P2tr => {
                let sighash = cache
                    .taproot_key_spend_signature_hash(
                        index,
                        &Prevouts::All(prevouts),
                        TapSighashType::Default,
                    )
                    .map_err(|e| TxError::Sighash(e.to_string()))?;
                let msg = Message::from_digest(sighash.to_byte_array());
                let keypair = Keypair::from_secret_key(&self.secp, &self.secret);
                let tweaked = keypair.tap_tweak(&self.secp, None);
                let signature = self.secp.sign_schnorr(&msg, &tweaked.to_keypair());
                let sig = bitcoin::taproot::Signature {
                    signature,
                    sighash_type: TapSighashType::Default,
                };
                Witness::p2tr_key_spend(&sig)
            }
        };
        *cache
            .witness_mut(index)
            .ok_or_else(|| TxError::Sighash(format!("no input {index}")))? = witness;
        Ok(())
    }
}

/// An output the anchorer can spend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utxo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Its value in satoshis.
    pub value_sat: u64,
    /// Its script (the anchorer's own).
    pub script_pubkey: ScriptBuf,
}

impl Utxo {
    /// As a transaction output.
    pub fn txout(&self) -> TxOut {
        TxOut {
            value: Amount::from_sat(self.value_sat),
            script_pubkey: self.script_pubkey.clone(),
        }
    }
}

/// A signed, consensus-checked anchor transaction.
#[derive(Clone, Debug)]
pub struct SignedAnchorTx {
    /// The transaction, with witness.
    pub tx: Transaction,
    /// Fee paid (input value minus change).
    pub fee: Amount,
    /// Virtual size in vbytes.
    pub vsize: u64,
    /// The fee rate it was built for, sat/vB (`fee >= fee_rate * vsize`).
    pub fee_rate_sat_vb: u64,
}

/// Sequence number of the anchor input: signals BIP125 replaceability, no relative locktime.
pub const ANCHOR_SEQUENCE: Sequence = Sequence::ENABLE_RBF_NO_LOCKTIME;

/// Builds and signs the anchor transaction committing `digest`, spending all of `utxos` at
/// `fee_rate_sat_vb`, and checks it with libbitcoinconsensus before returning it.
///
/// The fee is `fee_rate * vsize` of the signed transaction (recomputed after signing until it
/// covers the final size, so the effective rate is never below the configured one).
pub fn build_anchor_tx(
    key: &AnchorKey,
    utxos: &[Utxo],
    digest: &[u8; 32],
    fee_rate_sat_vb: u64,
) -> Result<SignedAnchorTx, TxError> {
    let commitment = TxOut {
        value: Amount::ZERO,
        script_pubkey: anchor_script(digest),
    };
    build_signed(key, utxos, commitment, fee_rate_sat_vb)
}

/// Builds and signs a transaction paying `payment` from `utxos` (all spent), the rest less the
/// fee back to `key`'s script as the second output, checked as [`build_anchor_tx`] is: how an
/// operator's key funds an anchorer's address, or moves its funds elsewhere.
pub fn build_payment_tx(
    key: &AnchorKey,
    utxos: &[Utxo],
    payment: TxOut,
    fee_rate_sat_vb: u64,
) -> Result<SignedAnchorTx, TxError> {
    build_signed(key, utxos, payment, fee_rate_sat_vb)
}

/// Spends all of `utxos` into `[first, change to key]` at `fee_rate_sat_vb`.
fn build_signed(
    key: &AnchorKey,
    utxos: &[Utxo],
    first: TxOut,
    fee_rate_sat_vb: u64,
) -> Result<SignedAnchorTx, TxError> {
    if fee_rate_sat_vb == 0 {
        return Err(TxError::ZeroFeeRate(fee_rate_sat_vb));
    }
    let own = key.script_pubkey();
    if let Some(foreign) = utxos.iter().find(|u| u.script_pubkey != own) {
        return Err(TxError::NotOurScript {
            outpoint: foreign.outpoint,
            found: foreign.script_pubkey.clone(),
            expected: own,
        });
    }
    let prevouts: Vec<TxOut> = utxos.iter().map(Utxo::txout).collect();
    let dust = own.minimal_non_dust();
    let total = utxos
        .iter()
        .map(|u| Amount::from_sat(u.value_sat))
        .try_fold(Amount::ZERO, Amount::checked_add)
        .ok_or_else(|| TxError::Sighash("input values overflow".into()))?;
    // What is left for the fee and the change once the first output is paid.
    let value = total
        .checked_sub(first.value)
        .ok_or(TxError::InsufficientFunds {
            inputs: utxos.len(),
            value: total,
            fee: first.value,
            dust,
        })?;

    let mut fee = Amount::ZERO;
    // Converges in at most two rounds (the size is fixed apart from the signature lengths).
    for _ in 0..4 {
        let change =
            value
                .checked_sub(fee)
                .filter(|c| *c >= dust)
                .ok_or(TxError::InsufficientFunds {
                    inputs: utxos.len(),
                    value,
                    fee,
                    dust,
                })?;
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: utxos
                .iter()
                .map(|u| TxIn {
                    previous_output: u.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: ANCHOR_SEQUENCE,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![
                first.clone(),
                TxOut {
                    value: change,
                    script_pubkey: own.clone(),
                },
            ],
        };
        for index in 0..utxos.len() {
            key.sign_input(&mut tx, index, &prevouts)?;
        }
        let vsize = tx.vsize() as u64;
        let needed = fee_rate_sat_vb
            .checked_mul(vsize)
            .map(Amount::from_sat)
            .ok_or(TxError::FeeOverflow {
                rate: fee_rate_sat_vb,
                vsize,
            })?;
        if fee >= needed {
            verify_spend(&tx, utxos)?;
            return Ok(SignedAnchorTx {
                tx,
                fee,
                vsize,
                fee_rate_sat_vb,
            });
        }
        fee = needed;
    }
    Err(TxError::Sighash(
        "fee computation did not converge (signature size kept growing)".into(),
    ))
}

/// Checks, with libbitcoinconsensus (Bitcoin Core's script interpreter), that `tx` spends
/// exactly `utxos`, in order, each input validly under all soft forks including taproot.
pub fn verify_spend(tx: &Transaction, utxos: &[Utxo]) -> Result<(), TxError> {
    let txid = tx.compute_txid();
    let spends_exactly = tx.input.len() == utxos.len()
        && tx
            .input
            .iter()
            .zip(utxos)
            .all(|(input, u)| input.previous_output == u.outpoint);
    if utxos.is_empty() || !spends_exactly {
        return Err(TxError::WrongInputs { txid });
    }
    let raw = bitcoin::consensus::serialize(tx);
    let spent: Vec<bitcoinconsensus::Utxo> = utxos
        .iter()
        .map(|u| bitcoinconsensus::Utxo {
            script_pubkey: u.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: u.script_pubkey.len() as u32,
            value: u.value_sat as i64,
        })
        .collect();
    for (index, u) in utxos.iter().enumerate() {
        bitcoinconsensus::verify_with_flags(
            u.script_pubkey.as_bytes(),
            u.value_sat,
            &raw,
            Some(&spent),
            index,
            bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT | bitcoinconsensus::VERIFY_TAPROOT,
        )
        .map_err(|e| TxError::Consensus {
            txid,
            reason: format!("input {index}: {e:?}"),
        })?;
    }
    Ok(())
}

/// BIP125 rules 3 and 4 as Bitcoin Core applies them: the replacement pays at least the
/// original's absolute fee plus the incremental relay fee (1 sat/vB) for its own size.
pub fn min_replacement_fee(original_fee: Amount, replacement_vsize: u64) -> Amount {
    original_fee + Amount::from_sat(INCREMENTAL_RELAY_FEE_SAT_VB * replacement_vsize)
}

/// Bitcoin Core's and btcd's default incremental relay fee, sat/vB.
pub const INCREMENTAL_RELAY_FEE_SAT_VB: u64 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::Txid;

    fn key(kind: ScriptKind) -> AnchorKey {
        AnchorKey::new(SecretKey::from_slice(&[0x01; 32]).unwrap(), kind)
    }

    fn utxo(key: &AnchorKey, value: u64) -> Utxo {
        Utxo {
            outpoint: OutPoint::new(Txid::from_byte_array([9; 32]), 0),
            value_sat: value,
            script_pubkey: key.script_pubkey(),
        }
    }

    #[test]
    fn p2wpkh_anchor_tx_shape_size_and_fee() {
        let k = key(ScriptKind::P2wpkh);
        let u = utxo(&k, 50_000);
        let digest = [0x42; 32];
        let mut sizes = std::collections::BTreeSet::new();
        // Different digests give different signatures. Low-R grinding fixes r at 32 bytes;
        // low-S s is 32 bytes except about 1 time in 128 (31 bytes), so the weight is 609 WU
        // (153 vB) or 608 WU (152 vB).
        for i in 0..=255u8 {
            let s = build_anchor_tx(&k, std::slice::from_ref(&u), &[i; 32], 2).unwrap();
            sizes.insert(s.vsize);
        }
        let s = build_anchor_tx(&k, std::slice::from_ref(&u), &digest, 2).unwrap();
        println!("P2WPKH anchor tx: vsize {} vB, weight {} WU, fee at 2 sat/vB {} sat, sizes seen {sizes:?}",
            s.vsize, s.tx.weight().to_wu(), s.fee.to_sat());
        assert!(s.vsize <= 154, "vsize {} > 154", s.vsize);
        assert_eq!(s.vsize, 153);
        assert!(sizes.iter().all(|v| *v == 152 || *v == 153), "{sizes:?}");
        assert_eq!(s.fee.to_sat(), 2 * s.vsize);
        assert_eq!(s.tx.input.len(), 1);
        assert_eq!(s.tx.input[0].sequence.0, 0xffff_fffd);
        assert!(s.tx.is_explicitly_rbf());
        assert_eq!(s.tx.output.len(), 2);
        assert_eq!(s.tx.output[0].value, Amount::ZERO);
        assert_eq!(s.tx.output[0].script_pubkey, anchor_script(&digest));
        assert_eq!(s.tx.output[1].script_pubkey, k.script_pubkey());
        assert_eq!(s.tx.output[1].value.to_sat(), 50_000 - s.fee.to_sat());
        verify_spend(&s.tx, std::slice::from_ref(&u)).unwrap();
    }

    #[test]
    fn p2tr_anchor_tx_shape_size_and_fee() {
        let k = key(ScriptKind::P2tr);
        let u = utxo(&k, 50_000);
        let s = build_anchor_tx(&k, std::slice::from_ref(&u), &[0x42; 32], 2).unwrap();
        println!(
            "P2TR anchor tx: vsize {} vB, weight {} WU, fee at 2 sat/vB {} sat",
            s.vsize,
            s.tx.weight().to_wu(),
            s.fee.to_sat()
        );
        assert_eq!(s.vsize, 154);
        assert_eq!(s.fee.to_sat(), 2 * s.vsize);
        verify_spend(&s.tx, std::slice::from_ref(&u)).unwrap();
    }

    #[test]
    fn consensus_check_rejects_tampering() {
        for kind in [ScriptKind::P2wpkh, ScriptKind::P2tr] {
            let k = key(kind);
            let u = utxo(&k, 50_000);
            let s = build_anchor_tx(&k, std::slice::from_ref(&u), &[1; 32], 3).unwrap();
            // Changing what was signed (the change value) breaks the signature.
            let mut t = s.tx.clone();
            t.output[1].value += Amount::from_sat(1);
            assert!(matches!(
                verify_spend(&t, std::slice::from_ref(&u)),
                Err(TxError::Consensus { .. })
            ));
            // Claiming a different spent amount breaks it too (segwit signs the amount).
            let mut u2 = u.clone();
            u2.value_sat += 1;
            assert!(matches!(
                verify_spend(&s.tx, std::slice::from_ref(&u2)),
                Err(TxError::Consensus { .. })
            ));
            // Another key cannot spend it.
            let other = AnchorKey::new(SecretKey::from_slice(&[2; 32]).unwrap(), kind);
            let theirs = Utxo {
                script_pubkey: other.script_pubkey(),
                ..u.clone()
            };
            assert!(matches!(
                build_anchor_tx(&k, std::slice::from_ref(&theirs), &[1; 32], 3),
                Err(TxError::NotOurScript { .. })
            ));
        }
    }

    #[test]
    fn insufficient_funds_and_zero_rate_are_errors() {
        let k = key(ScriptKind::P2wpkh);
        let u = utxo(&k, 294 + 2 * 153 - 1);
        assert!(matches!(
            build_anchor_tx(&k, std::slice::from_ref(&u), &[1; 32], 2),
            Err(TxError::InsufficientFunds { .. })
        ));
        let u = utxo(&k, 294 + 2 * 153);
        assert!(build_anchor_tx(&k, std::slice::from_ref(&u), &[1; 32], 2).is_ok());
        assert!(matches!(
            build_anchor_tx(&k, std::slice::from_ref(&u), &[1; 32], 0),
            Err(TxError::ZeroFeeRate(0))
        ));
        assert!(build_anchor_tx(&k, std::slice::from_ref(&u), &[1; 32], u64::MAX).is_err());
    }

    /// Change too small for another anchor is not the end: a top-up is spent alongside it.
    #[test]
    fn a_top_up_is_spent_with_the_low_change() {
        for kind in [ScriptKind::P2wpkh, ScriptKind::P2tr] {
            let k = key(kind);
            let low = utxo(&k, 400);
            assert!(matches!(
                build_anchor_tx(&k, std::slice::from_ref(&low), &[1; 32], 2),
                Err(TxError::InsufficientFunds { inputs: 1, .. })
            ));
            let top_up = Utxo {
                outpoint: OutPoint::new(Txid::from_byte_array([8; 32]), 3),
                ..utxo(&k, 20_000)
            };
            let both = [low.clone(), top_up.clone()];
            let s = build_anchor_tx(&k, &both, &[1; 32], 2).unwrap();
            assert_eq!(s.tx.input.len(), 2);
            assert!(s.tx.input.iter().all(|i| i.sequence == ANCHOR_SEQUENCE));
            assert_eq!(s.fee.to_sat(), 2 * s.vsize);
            assert_eq!(s.tx.output[1].value.to_sat(), 20_400 - s.fee.to_sat());
            verify_spend(&s.tx, &both).unwrap();
            // Each input is checked against its own spent output, in order.
            assert!(matches!(
                verify_spend(&s.tx, &[top_up.clone(), low.clone()]),
                Err(TxError::WrongInputs { .. })
            ));
            assert!(matches!(
                verify_spend(&s.tx, std::slice::from_ref(&low)),
                Err(TxError::WrongInputs { .. })
            ));
            let inflated = [
                low.clone(),
                Utxo {
                    value_sat: 20_001,
                    ..top_up
                },
            ];
            assert!(matches!(
                verify_spend(&s.tx, &inflated),
                Err(TxError::Consensus { .. })
            ));
            println!("{kind:?} anchor with two inputs: {} vB", s.vsize);
        }
        assert!(matches!(
            build_anchor_tx(&key(ScriptKind::P2wpkh), &[], &[1; 32], 2),
            Err(TxError::InsufficientFunds { inputs: 0, .. })
        ));
    }

    #[test]
    fn replacement_fee_rule() {
        let k = key(ScriptKind::P2wpkh);
        let u = utxo(&k, 100_000);
        let a = build_anchor_tx(&k, std::slice::from_ref(&u), &[1; 32], 2).unwrap();
        let b = build_anchor_tx(&k, std::slice::from_ref(&u), &[1; 32], 3).unwrap();
        assert_eq!(a.vsize, b.vsize);
        assert!(b.fee >= min_replacement_fee(a.fee, b.vsize));
        assert_eq!(a.tx.input[0].previous_output, b.tx.input[0].previous_output);
        assert_ne!(a.tx.compute_txid(), b.tx.compute_txid());
    }
}
