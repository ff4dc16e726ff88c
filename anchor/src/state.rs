//! The anchorer's persistent state: one JSON file, replaced atomically.
//!
//! Writes go to `<file>.tmp`, are fsynced, renamed over the file and the directory is
//! fsynced, so after a crash the file holds either the old or the new state, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{BlockHash, Network, OutPoint, ScriptBuf, Transaction, Txid};
use serde::{Deserialize, Serialize};

use crate::digest::AnchorId;
use crate::tx::Utxo;

/// Version of the state file layout. Format 1 (one `utxo`, one `spends`) is read and upgraded.
pub const STATE_FORMAT: u32 = 2;

/// Errors reading or writing the state file.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("anchor state {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("anchor state {path}: not valid state JSON: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("anchor state {path}: format {found}, this build reads format {STATE_FORMAT}")]
    Format { path: PathBuf, found: u32 },
    #[error("anchor state {path}: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    #[error("anchor state: stored transaction {txid}: {reason}")]
    BadTx { txid: Txid, reason: String },
}

/// Everything the anchorer must not forget across restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorState {
    /// Layout version, [`STATE_FORMAT`].
    pub format: u32,
    /// The Bitcoin network the anchorer works on.
    pub network: Network,
    /// The anchorer's own script (identifies the key the file belongs to).
    pub script_pubkey: ScriptBuf,
    /// The outputs the next anchor spends, all of them: the last anchor's change and any
    /// top-ups added since (also while an anchor is in flight).
    pub utxos: Vec<Utxo>,
    /// The anchor being broadcast or confirmed, if any.
    pub in_flight: Option<InFlight>,
    /// Anchors with the required confirmations, oldest first.
    pub confirmed: Vec<ConfirmedAnchor>,
    /// Anchors given up because another transaction spent their input, or because an input
    /// vanished from the chain, oldest first.
    #[serde(default)]
    pub abandoned: Vec<AbandonedAnchor>,
    /// The last block searched for payments to the anchorer's script (set to the tip when
    /// the state is first used); payments in later blocks are found and held.
    #[serde(default)]
    pub payments_searched: Option<BlockRef>,
}

/// A block of the best chain as last seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
}

/// The anchor currently in flight: every signed version of its transaction (RBF makes more
/// than one), all spending the same outputs, so at most one of them can ever confirm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// The anchor (its digest).
    pub id: AnchorId,
    /// The outputs every version spends, in input order.
    pub spends: Vec<Utxo>,
    /// Signed versions, oldest first; the last one is the one (re)broadcast first.
    pub versions: Vec<TxVersion>,
    /// Lowest height not yet searched for a version of the transaction.
    pub next_scan_height: u64,
    /// The last block searched, to notice a reorg under the searched range.
    pub last_scanned: Option<BlockRef>,
    /// The block holding one of the versions, once seen in the best chain.
    pub included: Option<Inclusion>,
    /// Why the last broadcast attempt failed, if it did.
    pub last_broadcast_error: Option<String>,
    /// A transaction that is not a version of this anchor but spends one of its inputs, once
    /// seen in a block of the best chain.
    #[serde(default)]
    pub conflict: Option<ConflictingSpend>,
}

/// A transaction in a block that spends an input of the anchor in flight without being one
/// of its versions (the key used elsewhere, or a replacement the anchorer did not sign).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictingSpend {
    /// The conflicting transaction.
    pub txid: Txid,
    /// The block holding it.
    pub block: BlockRef,
    /// The anchor's inputs it spends.
    pub spent: Vec<OutPoint>,
    /// Its outputs that pay to the anchorer's own script: the anchorer's once it is final.
    pub returned: Vec<Utxo>,
}

/// An anchor given up for good, because a conflicting spend of its input was final or because
/// the node no longer knows one of its inputs; its digest can be anchored again from the
/// remaining funds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonedAnchor {
    /// The anchor (its digest).
    pub id: AnchorId,
    /// The transaction that spent its input, when one was seen in a block.
    pub conflicting_txid: Option<Txid>,
    /// The block holding that transaction.
    pub block: Option<BlockRef>,
    /// Its inputs that the node's chain and mempool no longer hold unspent, when that was why.
    #[serde(default)]
    pub missing_inputs: Vec<OutPoint>,
}

/// One signed version of the anchor transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxVersion {
    /// Its txid.
    pub txid: Txid,
    /// The signed transaction, consensus-encoded hex (with witness).
    pub raw_tx: String,
    /// Fee in satoshis.
    pub fee_sat: u64,
    /// The fee rate it was built for, sat/vB.
    pub fee_rate_sat_vb: u64,
    /// Virtual size, vbytes.
    pub vsize: u64,
    /// How many times it was handed to the node.
    pub broadcast_attempts: u32,
}

impl TxVersion {
    /// Records a signed transaction.
    pub fn new(tx: &Transaction, fee_sat: u64, fee_rate_sat_vb: u64, vsize: u64) -> Self {
        TxVersion {
            txid: tx.compute_txid(),
            raw_tx: serialize_hex(tx),
            fee_sat,
            fee_rate_sat_vb,
            vsize,
            broadcast_attempts: 0,
        }
    }

    /// Decodes the stored transaction and checks its txid.
    pub fn tx(&self) -> Result<Transaction, StateError> {
        let tx: Transaction = deserialize_hex(&self.raw_tx).map_err(|e| StateError::BadTx {
            txid: self.txid,
            reason: e.to_string(),
        })?;
        if tx.compute_txid() != self.txid {
            return Err(StateError::BadTx {
                txid: self.txid,
                reason: format!("raw transaction has txid {}", tx.compute_txid()),
            });
        }
        Ok(tx)
    }
}

/// Where an in-flight anchor was seen mined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inclusion {
    /// Which version was mined.
    pub txid: Txid,
    /// The block holding it.
    pub block: BlockRef,
}

/// An anchor with the required number of confirmations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedAnchor {
    /// The anchor (its digest).
    pub id: AnchorId,
    /// The transaction that was mined.
    pub txid: Txid,
    /// The block holding it.
    pub block_hash: BlockHash,
    /// That block's height.
    pub height: u64,
    /// Fee paid, satoshis.
    pub fee_sat: u64,
    /// Confirmations when it was recorded as confirmed.
    pub confirmations: u64,
}

impl AnchorState {
    /// Fresh state for `script_pubkey` on `network`.
    pub fn new(network: Network, script_pubkey: ScriptBuf) -> Self {
        AnchorState {
            format: STATE_FORMAT,
            network,
            script_pubkey,
            utxos: Vec::new(),
            in_flight: None,
            confirmed: Vec::new(),
            abandoned: Vec::new(),
            payments_searched: None,
        }
    }

    /// Satoshis the anchorer holds: its unspent outputs plus those the anchor in flight spends
    /// (they come back as change).
    pub fn held_sat(&self) -> u64 {
        let in_flight = self.in_flight.iter().flat_map(|fl| &fl.spends);
        self.utxos
            .iter()
            .chain(in_flight)
            .map(|u| u.value_sat)
            .sum()
    }

    /// Whether `outpoint` is already the anchorer's: held, or spent by the anchor in flight.
    pub fn knows_output(&self, outpoint: &OutPoint) -> bool {
        let in_flight = self.in_flight.iter().flat_map(|fl| &fl.spends);
        self.utxos
            .iter()
            .chain(in_flight)
            .any(|u| u.outpoint == *outpoint)
    }

    /// Whether `txid` is one of the anchorer's own transactions (a version in flight or a
    /// confirmed anchor), whose outputs to its script are change, not payments.
    pub fn is_own_tx(&self, txid: &Txid) -> bool {
        self.in_flight
            .iter()
            .flat_map(|fl| &fl.versions)
            .any(|v| v.txid == *txid)
            || self.confirmed.iter().any(|c| c.txid == *txid)
    }

    /// Reads the state at `path`; `Ok(None)` if there is no file yet.
    pub fn load(path: &Path) -> Result<Option<Self>, StateError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    path: path.into(),
                    op: "read",
                    source,
                })
            }
        };
        #[derive(Deserialize)]
        struct Probe {
            format: u32,
        }
        let probe: Probe = serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
            path: path.into(),
            source,
        })?;
        let parse_error = |source| StateError::Parse {
            path: path.into(),
            source,
        };
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).map_err(parse_error)?;
        match probe.format {
            STATE_FORMAT => {}
            1 => upgrade_format_1(&mut json),
            found => {
                return Err(StateError::Format {
                    path: path.into(),
                    found,
                })
            }
        }
        serde_json::from_value(json).map(Some).map_err(parse_error)
    }

    /// Replaces the file at `path` with this state, atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |op: &'static str| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, op, source }
        };
        let json = serde_json::to_vec_pretty(self).map_err(|source| StateError::Parse {
            path: path.into(),
            source,
        })?;
        let file_name = path.file_name().ok_or_else(|| StateError::Mismatch {
            path: path.into(),
            reason: "state path has no file name".into(),
        })?;
        let mut tmp_name = file_name.to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io("create temporary file"))?;
            f.write_all(&json).map_err(io("write temporary file"))?;
            f.write_all(b"\n").map_err(io("write temporary file"))?;
            f.sync_all().map_err(io("fsync temporary file"))?;
        }
        fs::rename(&tmp, path).map_err(io("rename temporary file over the state"))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync state directory"))?;
        Ok(())
    }
}

/// Format 1 had one `utxo` (or null) and an in-flight anchor with one `spends` output; both
/// become lists. The rest of the layout is unchanged.
fn upgrade_format_1(json: &mut serde_json::Value) {
    use serde_json::Value;
    let as_list = |v: Option<Value>| match v {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(one) => Value::Array(vec![one]),
    };
    if let Some(state) = json.as_object_mut() {
        let utxo = state.remove("utxo");
        state.insert("utxos".into(), as_list(utxo));
        if let Some(in_flight) = state.get_mut("in_flight").and_then(Value::as_object_mut) {
            let spends = in_flight.remove("spends");
            in_flight.insert("spends".into(), as_list(spends));
        }
        state.insert("format".into(), STATE_FORMAT.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn sample() -> AnchorState {
        let mut s = AnchorState::new(Network::Regtest, ScriptBuf::from_bytes(vec![0x51]));
        s.utxos.push(Utxo {
            outpoint: OutPoint::new(Txid::from_byte_array([3; 32]), 1),
            value_sat: 12_345,
            script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
        });
        s.confirmed.push(ConfirmedAnchor {
            id: AnchorId([1; 32]),
            txid: Txid::from_byte_array([2; 32]),
            block_hash: BlockHash::from_byte_array([4; 32]),
            height: 500,
            fee_sat: 306,
            confirmations: 6,
        });
        s
    }

    #[test]
    fn save_load_roundtrip_and_no_temp_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor.json");
        assert_eq!(AnchorState::load(&path).unwrap(), None);
        let s = sample();
        s.save(&path).unwrap();
        assert_eq!(AnchorState::load(&path).unwrap(), Some(s.clone()));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("anchor.json")]);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"network\": \"regtest\""), "{text}");
    }

    #[test]
    fn a_format_1_file_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor.json");
        let current = sample();
        let mut v1 = serde_json::to_value(&current).unwrap();
        let state = v1.as_object_mut().unwrap();
        let utxo = state.remove("utxos").unwrap()[0].clone();
        state.remove("abandoned");
        state.insert("utxo".into(), utxo);
        state.insert("format".into(), 1.into());
        fs::write(&path, v1.to_string()).unwrap();
        assert_eq!(AnchorState::load(&path).unwrap(), Some(current));

        // An unfunded format-1 state with nothing in flight.
        let empty = AnchorState::new(Network::Regtest, ScriptBuf::from_bytes(vec![0x51]));
        let mut v1 = serde_json::to_value(&empty).unwrap();
        let state = v1.as_object_mut().unwrap();
        state.remove("utxos");
        state.insert("utxo".into(), serde_json::Value::Null);
        state.insert("format".into(), 1.into());
        fs::write(&path, v1.to_string()).unwrap();
        assert_eq!(AnchorState::load(&path).unwrap(), Some(empty));
    }

    #[test]
    fn corrupt_or_future_state_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            AnchorState::load(&path),
            Err(StateError::Parse { .. })
        ));
        let mut v = serde_json::to_value(sample()).unwrap();
        v["format"] = 99.into();
        fs::write(&path, v.to_string()).unwrap();
        assert!(matches!(
            AnchorState::load(&path),
            Err(StateError::Format { found: 99, .. })
        ));
    }
}
