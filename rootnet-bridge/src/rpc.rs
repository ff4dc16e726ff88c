//! A small Ethereum JSON-RPC client restricted to the calls RSK serves. Block numbers are
//! always explicit (RSK has no `finalized`/`safe` tags), and errors keep the JSON-RPC code,
//! message and revert data so callers can decode the contract's custom errors.

use std::time::Duration;

use alloy::primitives::{Address, Bytes, B256, U256};
use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

/// A failed JSON-RPC call; every variant names the RPC `method` that failed.
#[derive(Debug, Error)]
#[allow(missing_docs)] // Each variant's message says what it means.
pub enum RpcError {
    #[error("{method}: RSK node at {url} unreachable: {source}")]
    Transport {
        method: &'static str,
        url: String,
        source: reqwest::Error,
    },
    #[error("{method}: node error {code}: {message}")]
    Node {
        method: &'static str,
        code: i64,
        message: String,
        /// Revert data, when the node returned any.
        data: Option<Bytes>,
    },
    #[error("{method}: unexpected response: {detail}")]
    Response {
        method: &'static str,
        detail: String,
    },
}

/// JSON-RPC client for one RSK node; clones share the HTTP connection pool.
#[derive(Clone)]
pub struct EthRpc {
    url: String,
    http: reqwest::Client,
}

/// What a node says about one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Its hash.
    pub hash: B256,
    /// Its time, seconds since the Unix epoch.
    pub timestamp: u64,
}

/// The fields of a receipt the bridge uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Hash of the mined transaction.
    pub transaction_hash: B256,
    /// Block the transaction was mined in.
    pub block_number: U256,
    /// `1` on success, `0` on failure; `None` when the node omits it.
    pub status: Option<U256>,
    /// Gas the transaction consumed.
    pub gas_used: U256,
    /// Logs the transaction emitted (empty when the node omits the field).
    #[serde(default)]
    pub logs: Vec<Log>,
}

impl Receipt {
    /// Whether the transaction succeeded (status `1`); a missing status counts as failure.
    pub fn succeeded(&self) -> bool {
        self.status == Some(U256::from(1))
    }
}

/// The fields of a log entry the bridge uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Log {
    /// Contract that emitted the log.
    pub address: Address,
    /// Indexed topics; the first is the event signature hash.
    pub topics: Vec<B256>,
    /// ABI-encoded non-indexed event fields.
    pub data: Bytes,
    /// Block holding the log; `None` for a pending log.
    pub block_number: Option<U256>,
    /// Transaction that emitted the log; `None` for a pending log.
    #[serde(default)]
    pub transaction_hash: Option<B256>,
}

fn revert_data(error: &Value) -> Option<Bytes> {
    match error.get("data")? {
        Value::String(s) => s.parse().ok(),
        Value::Object(o) => o.get("data")?.as_str()?.parse().ok(),
        _ => None,
    }
}

fn quantity(n: u64) -> String {
    format!("{n:#x}")
}

impl EthRpc {
    /// A client for the node at `url` with a 30-second request timeout; makes no request yet.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a client with only a timeout always builds"),
        }
    }

    /// Sends one JSON-RPC request and decodes its `result` into `T`; a JSON-RPC error becomes
    /// [`RpcError::Node`] with its code, message and any revert data.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<T, RpcError> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response: Value = self
            .http
            .post(&self.url)
            .json(&request)
            .send()
            .await
            .map_err(|source| RpcError::Transport {
                method,
                url: self.url.clone(),
                source,
            })?
            .json()
            .await
            .map_err(|e| RpcError::Response {
                method,
                detail: e.to_string(),
            })?;
        if let Some(error) = response.get("error") {
            return Err(RpcError::Node {
                method,
                code: error
                    .get("code")
                    .and_then(Value::as_i64)
                    .unwrap_or_default(),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                data: revert_data(error),
            });
        }
        serde_json::from_value(response.get("result").cloned().unwrap_or(Value::Null)).map_err(
            |e| RpcError::Response {
                method,
                detail: e.to_string(),
            },
        )
    }

    /// The chain id the node reports (`eth_chainId`).
    pub async fn chain_id(&self) -> Result<u64, RpcError> {
        let id: U256 = self.call("eth_chainId", json!([])).await?;
        Ok(id.to::<u64>())
    }

    /// The header fields of block `number` (`eth_getBlockByNumber`), `None` if the node has
    /// no such block.
    pub async fn block(&self, number: u64) -> Result<Option<BlockHeader>, RpcError> {
        #[derive(Deserialize)]
        struct Block {
            hash: B256,
            timestamp: U256,
        }
        let block: Option<Block> = self
            .call(
                "eth_getBlockByNumber",
                json!([format!("{number:#x}"), false]),
            )
            .await?;
        Ok(block.map(|b| BlockHeader {
            hash: b.hash,
            timestamp: b.timestamp.saturating_to::<u64>(),
        }))
    }

    /// The latest block number (`eth_blockNumber`).
    pub async fn block_number(&self) -> Result<u64, RpcError> {
        let n: U256 = self.call("eth_blockNumber", json!([])).await?;
        Ok(n.to::<u64>())
    }

    /// The node's gas price in wei (`eth_gasPrice`).
    pub async fn gas_price(&self) -> Result<u128, RpcError> {
        let price: U256 = self.call("eth_gasPrice", json!([])).await?;
        Ok(price.to::<u128>())
    }

    /// The next nonce of `address`, counting its pending transactions.
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, RpcError> {
        let n: U256 = self
            .call("eth_getTransactionCount", json!([address, "pending"]))
            .await?;
        Ok(n.to::<u64>())
    }

    /// Gas needed by a call to `to`, or by a deployment when `to` is `None` (`eth_estimateGas`);
    /// a revert comes back as [`RpcError::Node`] with the revert data the node returns.
    pub async fn estimate_gas(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        data: &Bytes,
    ) -> Result<u64, RpcError> {
        let mut tx = json!({"from": from, "value": value, "data": data});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let gas: U256 = self.call("eth_estimateGas", json!([tx])).await?;
        Ok(gas.to::<u64>())
    }

    /// `eth_call` at an explicit block number, or at `latest` when `None`.
    pub async fn eth_call(
        &self,
        to: Address,
        data: &Bytes,
        block: Option<u64>,
    ) -> Result<Bytes, RpcError> {
        let block = block.map_or_else(|| json!("latest"), |n| json!(quantity(n)));
        self.call("eth_call", json!([{"to": to, "data": data}, block]))
            .await
    }

    /// Broadcasts a signed, encoded transaction and returns its hash (`eth_sendRawTransaction`).
    pub async fn send_raw_transaction(&self, raw: &[u8]) -> Result<B256, RpcError> {
        self.call(
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(raw))]),
        )
        .await
    }

    /// The receipt of transaction `hash`, or `None` while it is not mined.
    pub async fn receipt(&self, hash: B256) -> Result<Option<Receipt>, RpcError> {
        self.call("eth_getTransactionReceipt", json!([hash])).await
    }

    /// Logs of `address` with `topic0` in `from..=to`; callers keep the range bounded.
    pub async fn logs(
        &self,
        address: Address,
        topic0: B256,
        topic1: Option<B256>,
        from: u64,
        to: u64,
    ) -> Result<Vec<Log>, RpcError> {
        let topics = match topic1 {
            Some(t1) => json!([topic0, t1]),
            None => json!([topic0]),
        };
        self.call(
            "eth_getLogs",
            json!([{"address": address, "topics": topics,
                    "fromBlock": quantity(from), "toBlock": quantity(to)}]),
        )
        .await
    }
}
