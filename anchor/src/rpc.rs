//! A small JSON-RPC-over-HTTP client for btcd and Bitcoin Core.
//!
//! Only the calls the anchorer needs, using forms both nodes accept: blocks, headers and
//! transactions are fetched in their hex (non-verbose) form and decoded here with
//! `bitcoin::consensus`, and every decoded object is checked against the hash it was asked
//! for, so a confused or lying node produces an error, not a wrong answer.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{Address, Amount, Block, BlockHash, OutPoint, ScriptBuf, Transaction, Txid};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// What went wrong with one RPC call; every variant names the method.
#[allow(missing_docs)] // Each variant's message says what it means.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("bitcoin rpc {method}: cannot reach the node: {source}")]
    Transport {
        method: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("bitcoin rpc {method}: HTTP status {status}: {body}")]
    Http {
        method: String,
        status: u16,
        body: String,
    },
    #[error("bitcoin rpc {method}: the node returned error {code}: {message}")]
    Node {
        method: String,
        code: i64,
        message: String,
    },
    #[error("bitcoin rpc {method}: malformed response: {reason}")]
    Malformed { method: String, reason: String },
    #[error("bitcoin rpc: cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl RpcError {
    /// The JSON-RPC error code, if the node answered with an error object.
    pub fn node_code(&self) -> Option<i64> {
        match self {
            RpcError::Node { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn malformed(method: &str, reason: impl Into<String>) -> Self {
        RpcError::Malformed {
            method: method.to_string(),
            reason: reason.into(),
        }
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    message: String,
}

/// An unspent output as `gettxout` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnspentOutput {
    /// Its value in satoshis.
    pub value_sat: u64,
    /// The script it pays.
    pub script_pubkey: ScriptBuf,
    /// Blocks from the one holding its transaction to the tip, inclusive; 0 in the mempool.
    pub confirmations: u64,
    /// Whether a coinbase created it (spendable only after [`COINBASE_MATURITY`] blocks).
    pub coinbase: bool,
}

impl UnspentOutput {
    /// Whether a transaction in the next block may spend it.
    pub fn is_mature(&self) -> bool {
        !self.coinbase || self.confirmations >= COINBASE_MATURITY
    }
}

/// Confirmations a coinbase output needs before a transaction in the next block may spend it.
pub const COINBASE_MATURITY: u64 = 100;

#[derive(Deserialize)]
struct RawTxOut {
    confirmations: u64,
    value: f64,
    #[serde(rename = "scriptPubKey")]
    script_pubkey: RawScript,
    #[serde(default)]
    coinbase: bool,
}

#[derive(Deserialize)]
struct RawScript {
    hex: String,
}

/// JSON-RPC client with HTTP basic auth.
pub struct RpcClient {
    url: String,
    user: String,
    pass: String,
    http: reqwest::Client,
    next_id: AtomicU64,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("RpcClient")
            .field("url", &self.url)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Longest body excerpt kept in an error message.
const MAX_BODY_IN_ERROR: usize = 300;

impl RpcClient {
    /// A client for `url` (e.g. `http://127.0.0.1:18443`) with a 60 s per-request timeout.
    pub fn new(
        url: impl Into<String>,
        user: impl Into<String>,
        pass: impl Into<String>,
    ) -> Result<Self, RpcError> {
        Self::with_timeout(url, user, pass, Duration::from_secs(60))
    }

    /// As [`Self::new`] with an explicit per-request timeout.
    pub fn with_timeout(
        url: impl Into<String>,
        user: impl Into<String>,
        pass: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, RpcError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(RpcError::Client)?;
        Ok(RpcClient {
            url: url.into(),
            user: user.into(),
            pass: pass.into(),
            http,
            next_id: AtomicU64::new(1),
        })
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with positional `params` and decodes the `result` as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<T, RpcError> {
        let value = self.call_value(method, params).await?;
        serde_json::from_value(value.clone()).map_err(|e| {
            RpcError::malformed(
                method,
                format!("unexpected result {}: {e}", excerpt(&value.to_string())),
            )
        })
    }

    async fn call_value(&self, method: &str, params: &[Value]) -> Result<Value, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let resp = self
            .http
            .post(&self.url)
            .basic_auth(&self.user, Some(&self.pass))
            .json(&body)
            .send()
            .await
            .map_err(|source| RpcError::Transport {
                method: method.to_string(),
                source,
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|source| RpcError::Transport {
            method: method.to_string(),
            source,
        })?;
        // Bitcoin Core answers RPC errors with HTTP 500/404 and a JSON body; btcd with 200.
        // So parse the body first and fall back to the status only when it is not JSON-RPC.
        let parsed = serde_json::from_slice::<Response>(&bytes);
        if let Ok(Response {
            error: Some(err), ..
        }) = parsed
        {
            return Err(RpcError::Node {
                method: method.to_string(),
                code: err.code,
                message: err.message,
            });
        }
        if !status.is_success() {
            return Err(RpcError::Http {
                method: method.to_string(),
                status: status.as_u16(),
                body: excerpt(&String::from_utf8_lossy(&bytes)),
            });
        }
        match parsed {
            Ok(r) => Ok(r.result),
            Err(e) => Err(RpcError::malformed(
                method,
                format!(
                    "not a JSON-RPC response ({e}): {}",
                    excerpt(&String::from_utf8_lossy(&bytes))
                ),
            )),
        }
    }

    /// `getblockcount`: height of the best chain's tip.
    pub async fn get_block_count(&self) -> Result<u64, RpcError> {
        self.call("getblockcount", &[]).await
    }

    /// `getblockhash height`.
    pub async fn get_block_hash(&self, height: u64) -> Result<BlockHash, RpcError> {
        let s: String = self.call("getblockhash", &[json!(height)]).await?;
        BlockHash::from_str(&s)
            .map_err(|e| RpcError::malformed("getblockhash", format!("bad hash {s:?}: {e}")))
    }

    /// `getblockheader hash false`, decoded and checked to hash to `hash`.
    pub async fn get_block_header(&self, hash: &BlockHash) -> Result<Header, RpcError> {
        const M: &str = "getblockheader";
        let s: String = self
            .call(M, &[json!(hash.to_string()), json!(false)])
            .await?;
        let header: Header = deserialize_hex(&s)
            .map_err(|e| RpcError::malformed(M, format!("cannot decode header hex: {e}")))?;
        if header.block_hash() != *hash {
            return Err(RpcError::malformed(
                M,
                format!("asked for {hash}, got header {}", header.block_hash()),
            ));
        }
        Ok(header)
    }

    /// `getblock hash 0`, decoded, checked to hash to `hash` and to match its merkle root.
    pub async fn get_block(&self, hash: &BlockHash) -> Result<Block, RpcError> {
        const M: &str = "getblock";
        let s: String = self.call(M, &[json!(hash.to_string()), json!(0)]).await?;
        let block: Block = deserialize_hex(&s)
            .map_err(|e| RpcError::malformed(M, format!("cannot decode block hex: {e}")))?;
        if block.block_hash() != *hash {
            return Err(RpcError::malformed(
                M,
                format!("asked for {hash}, got block {}", block.block_hash()),
            ));
        }
        if !block.check_merkle_root() {
            return Err(RpcError::malformed(
                M,
                format!("block {hash}: transactions do not match the merkle root"),
            ));
        }
        Ok(block)
    }

    /// `getrawtransaction txid 0`, decoded and checked to have `txid`. Finds confirmed
    /// transactions only on nodes with a transaction index (`--txindex` / `-txindex`).
    pub async fn get_raw_transaction(&self, txid: &Txid) -> Result<Transaction, RpcError> {
        const M: &str = "getrawtransaction";
        let s: String = self.call(M, &[json!(txid.to_string()), json!(0)]).await?;
        let tx: Transaction = deserialize_hex(&s)
            .map_err(|e| RpcError::malformed(M, format!("cannot decode transaction hex: {e}")))?;
        if tx.compute_txid() != *txid {
            return Err(RpcError::malformed(
                M,
                format!("asked for {txid}, got transaction {}", tx.compute_txid()),
            ));
        }
        Ok(tx)
    }

    /// `gettxout txid vout include_mempool`: the output if it is unspent in the node's best
    /// chain (and, with `include_mempool`, also if only a mempool transaction created it);
    /// `None` if it is spent, or was never created on this chain. Needs no transaction index.
    pub async fn get_tx_out(
        &self,
        outpoint: &OutPoint,
        include_mempool: bool,
    ) -> Result<Option<UnspentOutput>, RpcError> {
        const M: &str = "gettxout";
        let params = [
            json!(outpoint.txid.to_string()),
            json!(outpoint.vout),
            json!(include_mempool),
        ];
        let Some(raw): Option<RawTxOut> = self.call(M, &params).await? else {
            return Ok(None);
        };
        // The node states the value in BTC as a JSON number; `from_btc` reads it through its
        // decimal text, and anything that is not a whole number of satoshis is refused.
        let value = Amount::from_btc(raw.value)
            .map_err(|e| RpcError::malformed(M, format!("value {}: {e}", raw.value)))?;
        let script_pubkey = ScriptBuf::from_hex(&raw.script_pubkey.hex)
            .map_err(|e| RpcError::malformed(M, format!("scriptPubKey hex: {e}")))?;
        Ok(Some(UnspentOutput {
            value_sat: value.to_sat(),
            script_pubkey,
            confirmations: raw.confirmations,
            coinbase: raw.coinbase,
        }))
    }

    /// `sendrawtransaction hex`; checks the node reports the same txid.
    pub async fn send_raw_transaction(&self, tx: &Transaction) -> Result<Txid, RpcError> {
        const M: &str = "sendrawtransaction";
        let s: String = self.call(M, &[json!(serialize_hex(tx))]).await?;
        let txid = Txid::from_str(&s)
            .map_err(|e| RpcError::malformed(M, format!("bad txid {s:?}: {e}")))?;
        if txid != tx.compute_txid() {
            return Err(RpcError::malformed(
                M,
                format!("sent {}, node reports {txid}", tx.compute_txid()),
            ));
        }
        Ok(txid)
    }

    /// `getrawmempool`: txids in the node's mempool.
    pub async fn get_raw_mempool(&self) -> Result<Vec<Txid>, RpcError> {
        let v: Vec<String> = self.call("getrawmempool", &[]).await?;
        v.iter()
            .map(|s| {
                Txid::from_str(s).map_err(|e| {
                    RpcError::malformed("getrawmempool", format!("bad txid {s:?}: {e}"))
                })
            })
            .collect()
    }

    /// Mines `n` blocks (regtest): btcd's `generate n` (paying its `--miningaddr`), falling
    /// back to Bitcoin Core's `generatetoaddress n address` when `generate` is refused.
    pub async fn generate(&self, n: u64, address: &Address) -> Result<Vec<BlockHash>, RpcError> {
        let hashes: Vec<String> = match self.call("generate", &[json!(n)]).await {
            Ok(h) => h,
            Err(first @ (RpcError::Node { .. } | RpcError::Http { .. })) => self
                .call("generatetoaddress", &[json!(n), json!(address.to_string())])
                .await
                .map_err(|second| {
                    RpcError::malformed(
                        "generatetoaddress",
                        format!(
                            "`generate` failed ({first}) and so did `generatetoaddress` ({second})"
                        ),
                    )
                })?,
            Err(e) => return Err(e),
        };
        hashes
            .iter()
            .map(|s| {
                BlockHash::from_str(s).map_err(|e| {
                    RpcError::malformed("generate", format!("bad block hash {s:?}: {e}"))
                })
            })
            .collect()
    }
}

fn excerpt(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_BODY_IN_ERROR {
        return s.to_string();
    }
    let mut end = MAX_BODY_IN_ERROR;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}
