//! Harness for the multi-process integration tests: a local testnet of real `ipsat` nodes,
//! each supervising a real CometBFT, created with `ipsat testnet init` and driven over gRPC.
//!
//! Also starts anvil behind the RSK-strict JSON-RPC filter ([`rsk`]), btcd ([`btcd`]) and the
//! anchoring service ([`anchoring`]), the container devnet of
//! `devnet/docker-compose.yml` under podman ([`containers`]), child subnets through the CLI
//! ([`child`]) and a lying parent endpoint, a fake for the one fault no real node produces
//! ([`lying`]).
//!
//! It owns processes and temporary directories only; it must not reach into node internals,
//! so the tests see exactly what an operator and a dApp see.

pub mod anchoring;
pub mod btcd;
pub mod child;
pub mod containers;
pub mod cut;
pub mod fuzz;
pub mod lying;
pub mod rsk;
pub mod tree;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ipsat_core::{tx, Address, SubnetId};
use ipsat_proto::v1::{
    self as pb, query_service_client::QueryServiceClient, tx_body::Msg,
    tx_service_client::TxServiceClient,
};
use secp256k1::SecretKey;
use tonic::transport::Channel;

/// Fee that covers the default minimum for any transaction these tests send.
pub const FEE: u128 = 100_000_000_000;

/// A local testnet of `ipsat` nodes created by `ipsat testnet init` in a temporary directory;
/// running nodes are killed when it is dropped.
pub struct Testnet {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The subnet id `testnet init` chose for this testnet.
    pub subnet: SubnetId,
    homes: Vec<PathBuf>,
    grpc_ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
}

#[derive(Clone)]
/// gRPC clients for one node's query and transaction services.
pub struct Client {
    /// The node's `QueryService` client.
    pub query: QueryServiceClient<Channel>,
    /// The node's `TxService` client.
    pub tx: TxServiceClient<Channel>,
}

impl Testnet {
    /// Runs `ipsat testnet init` for `validators` nodes whose ports start at `base_port`.
    pub fn init(bin: &Path, validators: usize, base_port: u16) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let output = Command::new(bin)
            .args(["testnet", "init"])
            .arg("--validators")
            .arg(validators.to_string())
            .arg("--base-port")
            .arg(base_port.to_string())
            .arg("--grpc-base-port")
            .arg((base_port + 400).to_string())
            .arg("--metrics-base-port")
            .arg((base_port + 450).to_string())
            .args([
                "--timeout-commit",
                "300ms",
                "--accounts",
                "4",
                "--output",
                "json",
            ])
            .arg("--output-dir")
            .arg(dir.path().join("net"))
            .output()
            .context("running ipsat testnet init")?;
        ensure!(
            output.status.success(),
            "testnet init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let layout: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let grpc_ports = layout["nodes"]
            .as_array()
            .context("layout has no nodes")?
            .iter()
            .map(|n| n["grpc"].as_u64().map(|p| p as u16).context("grpc port"))
            .collect::<Result<Vec<_>>>()?;
        let subnet = layout["subnet_id"].as_str().context("subnet id")?.parse()?;
        let homes = (0..grpc_ports.len())
            .map(|i| dir.path().join("net").join(format!("node{i}")))
            .collect();
        Ok(Self {
            dir,
            bin: bin.to_owned(),
            subnet,
            homes,
            nodes: (0..grpc_ports.len()).map(|_| None).collect(),
            grpc_ports,
        })
    }

    /// The home directory of node `i`.
    pub fn home(&self, i: usize) -> PathBuf {
        self.homes[i].clone()
    }

    /// A directory inside this testnet's temporary directory, for homes of other networks.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Takes over a node home made elsewhere (a child subnet's validator, say) whose gRPC API
    /// listens on `grpc_port`; returns its index for [`Testnet::start`] and the others.
    pub fn adopt(&mut self, home: PathBuf, grpc_port: u16) -> usize {
        self.homes.push(home);
        self.grpc_ports.push(grpc_port);
        self.nodes.push(None);
        self.nodes.len() - 1
    }

    /// The gRPC port of node `i`.
    pub fn grpc_port(&self, i: usize) -> u16 {
        self.grpc_ports[i]
    }

    /// The number of nodes in the testnet.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the testnet has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Starts node `i` (ipsat plus its cometbft) in a process group of its own.
    pub fn start(&mut self, i: usize) -> Result<()> {
        ensure!(self.nodes[i].is_none(), "node {i} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home(i).join("ipsat.log"))?;
        let child = Command::new(&self.bin)
            .args(["node", "start", "--home"])
            .arg(self.home(i))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("spawning ipsat node start")?;
        self.nodes[i] = Some(child);
        Ok(())
    }

    /// Starts every node; see [`Testnet::start`].
    pub fn start_all(&mut self) -> Result<()> {
        (0..self.len()).try_for_each(|i| self.start(i))
    }

    /// The process id of node `i`'s `ipsat`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].as_ref().map(Child::id)
    }

    /// SIGKILL to node `i`'s whole process group: ipsat and cometbft die mid-flight.
    pub fn kill9(&mut self, i: usize) -> Result<()> {
        let mut child = self.nodes[i].take().context("node is not running")?;
        // SAFETY: kill(2) on the process group this harness created.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
        child.wait()?;
        Ok(())
    }

    /// SIGTERM to node `i`'s ipsat, which must stop its cometbft and exit 0.
    pub fn stop(&mut self, i: usize) -> Result<()> {
        let mut child = self.nodes[i].take().context("node is not running")?;
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(status.success(), "node {i} exited with {status} on SIGTERM");
                return Ok(());
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("node {i} did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the `ipsat` CLI against node 0 with this testnet's directory as `--home` (where the
    /// funded keys live); returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> Result<(bool, String, String)> {
        self.cli_at(self.grpc_ports[0], args)
    }

    /// Runs the CLI like [`Self::cli`], against the node whose gRPC API is on `grpc_port`.
    pub fn cli_at(&self, grpc_port: u16, args: &[&str]) -> Result<(bool, String, String)> {
        let output = Command::new(&self.bin)
            .args(args)
            .arg("--home")
            .arg(self.dir.path().join("net"))
            .arg("--node")
            .arg(format!("http://127.0.0.1:{grpc_port}"))
            .output()
            .context("running the ipsat CLI")?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    /// The tail of node `i`'s logs, for failure messages.
    pub fn logs(&self, i: usize) -> String {
        format!(
            "--- node{i} ipsat ---\n{}\n--- node{i} cometbft ---\n{}",
            log_tail(&self.home(i).join("ipsat.log")),
            log_tail(&self.home(i).join("logs/cometbft.log"))
        )
    }

    /// A gRPC client for node `i`, retrying until its API is up.
    pub async fn client(&self, i: usize) -> Result<Client> {
        let endpoint = format!("http://127.0.0.1:{}", self.grpc_ports[i]);
        Client::connect(&endpoint, Duration::from_secs(30))
            .await
            .with_context(|| format!("node {i}\n{}", self.logs(i)))
    }

    /// Waits until node `i` has committed at least `height`.
    pub async fn wait_for_height(&self, i: usize, height: u64, timeout: Duration) -> Result<u64> {
        let mut client = self.client(i).await?;
        client
            .wait_for_height(height, timeout)
            .await
            .with_context(|| format!("node {i}\n{}", self.logs(i)))
    }

    /// The secret key of a funded account created by testnet init ("faucet", "account-1", ...).
    pub fn key(&self, name: &str) -> Result<SecretKey> {
        load_key(
            &self
                .dir
                .path()
                .join("net/keys")
                .join(format!("{name}.json")),
        )
    }

    /// Signs a transaction for this testnet's subnet.
    pub fn sign(&self, key: &SecretKey, nonce: u64, msg: Msg) -> Vec<u8> {
        sign_for(&self.subnet, key, nonce, msg)
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().filter_map(Option::take) {
            let mut child = child;
            // SAFETY: kill(2) on the process group this harness created.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

/// One JSON-RPC call over HTTP; a node error becomes an error naming the method.
pub async fn json_rpc(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value> {
    let response: serde_json::Value = http
        .post(url)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await?
        .json()
        .await?;
    if let Some(error) = response.get("error") {
        bail!("{method}: {error}");
    }
    Ok(response["result"].clone())
}

/// Nanoseconds since the Unix epoch of an RFC 3339 UTC time as CometBFT writes it
/// (`2026-11-22T00:45:47.123456789Z`).
pub fn rfc3339_unix_nanos(time: &str) -> Result<i128> {
    let bad = || anyhow::anyhow!("{time:?} is not an RFC 3339 UTC time");
    let (date, clock) = time
        .strip_suffix('Z')
        .and_then(|t| t.split_once('T'))
        .ok_or_else(bad)?;
    let numbers = |text: &str, sep: char| -> Result<Vec<i64>> {
        text.split(sep)
            .map(|n| n.parse::<i64>().map_err(|_| bad()))
            .collect()
    };
    let [year, month, day] = numbers(date, '-')?[..] else {
        return Err(bad());
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let [hour, minute, second] = numbers(whole, ':')?[..] else {
        return Err(bad());
    };
    let nanos: i64 = format!("{fraction:0<9}")[..9].parse().map_err(|_| bad())?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Ok(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
}

/// A counter or gauge from the Prometheus endpoint of a node on `port`.
pub async fn metric(port: u16, name: &str) -> Result<u64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .with_context(|| format!("no metric {name} on port {port}"))?
        .parse()
        .with_context(|| format!("metric {name} is not a number"))
}

/// The last 40 lines of a log file (empty if it cannot be read), for failure messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The secret key in an `ipsat keys` file.
pub fn load_key(path: &Path) -> Result<SecretKey> {
    let file: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    let secret = hex::decode(file["secret_key"].as_str().context("secret_key")?)?;
    Ok(SecretKey::from_slice(&secret)?)
}

/// The account address of `key`.
pub fn address_of(key: &SecretKey) -> Address {
    tx::address_of(&key.public_key(&secp256k1::Secp256k1::signing_only()))
}

/// Signs a transaction from `key`'s address with `nonce`, fee [`FEE`] and `msg` for `subnet`;
/// returns the encoded signed transaction.
pub fn sign_for(subnet: &SubnetId, key: &SecretKey, nonce: u64, msg: Msg) -> Vec<u8> {
    let body = pb::TxBody {
        subnet_id: subnet.to_string(),
        from: address_of(key).0.to_vec(),
        nonce,
        fee: FEE.to_string(),
        msg: Some(msg),
    };
    tx::sign(key, subnet, &body)
}

/// A transfer message of `amount` to `to`.
pub fn transfer(to: Address, amount: u128) -> Msg {
    Msg::Transfer(pb::Transfer {
        to: to.0.to_vec(),
        amount: amount.to_string(),
    })
}

impl Client {
    /// Connects to the gRPC API at `endpoint`, retrying until it is up or `patience` passes.
    pub async fn connect(endpoint: &str, patience: Duration) -> Result<Self> {
        let deadline = Instant::now() + patience;
        loop {
            match Channel::from_shared(endpoint.to_owned())?.connect().await {
                Ok(channel) => {
                    return Ok(Self {
                        query: QueryServiceClient::new(channel.clone()),
                        tx: TxServiceClient::new(channel),
                    })
                }
                Err(e) if Instant::now() > deadline => {
                    bail!("gRPC at {endpoint} never came up: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Waits until this node has committed at least `height`; returns the height it reached.
    pub async fn wait_for_height(&mut self, height: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = self.status().await {
                if status.height >= height {
                    return Ok(status.height);
                }
            }
            if Instant::now() > deadline {
                bail!("did not reach height {height} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Broadcasts the signed transaction `tx` with broadcast mode `mode`.
    pub async fn broadcast(
        &mut self,
        tx: Vec<u8>,
        mode: pb::BroadcastMode,
    ) -> Result<pb::BroadcastTxResponse> {
        Ok(self
            .tx
            .broadcast_tx(pb::BroadcastTxRequest {
                tx,
                mode: mode as i32,
                timeout_ms: 0,
            })
            .await?
            .into_inner())
    }

    /// `who`'s balance in atto-RBTC.
    pub async fn balance(&mut self, who: Address) -> Result<u128> {
        let account = self.account(who).await?;
        account
            .balance
            .parse()
            .with_context(|| format!("balance {:?}", account.balance))
    }

    /// Polls `who`'s balance until it is `want`, printing each new value it sees under `what`.
    pub async fn wait_for_balance(
        &mut self,
        who: Address,
        want: u128,
        what: &str,
        timeout: Duration,
    ) -> Result<()> {
        let want = want.to_string();
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let now = self.account(who).await?.balance;
            if now != last {
                eprintln!("{what}: {now}");
                last = now.clone();
            }
            if now == want {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{what} is {now}, not {want}, after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The account at `address`, without a proof.
    pub async fn account(&mut self, address: Address) -> Result<pb::Account> {
        self.query
            .get_account(pb::GetAccountRequest {
                address: address.0.to_vec(),
                prove: false,
            })
            .await?
            .into_inner()
            .account
            .context("no account in response")
    }

    /// The time of block `height`, in nanoseconds since the Unix epoch.
    pub async fn block_time(&mut self, height: u64) -> Result<i128> {
        let block = self
            .query
            .get_block(pb::GetBlockRequest { height })
            .await?
            .into_inner();
        rfc3339_unix_nanos(&block.time)
    }

    /// The node's status (including its latest committed height).
    pub async fn status(&mut self) -> Result<pb::GetStatusResponse> {
        Ok(self
            .query
            .get_status(pb::GetStatusRequest {})
            .await?
            .into_inner())
    }
}

/// Polls `check` every half second until it says done, printing what it sees whenever that
/// changes; panics with the last thing seen after `timeout` (a test's progress bound).
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let (done, seen) = check().await;
        if seen != last {
            eprintln!("{what}: {seen}");
            last = seen;
        }
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} after {timeout:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_convert_to_unix_nanos() {
        assert_eq!(rfc3339_unix_nanos("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            rfc3339_unix_nanos("2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            rfc3339_unix_nanos("2024-02-29T00:00:01.000000001Z").unwrap(),
            1_709_164_801_000_000_001
        );
        assert!(rfc3339_unix_nanos("2024-02-29 00:00:01").is_err());
    }
}
