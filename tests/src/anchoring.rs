//! An anchoring service (`ipsat anchor start`) in its own home, set up through the CLI as an
//! operator would: its RSK key (the gateway's anchorer), its Bitcoin key, and the `[gateway]`
//! and `[anchor]` sections pointing at anvil and a [`Btcd`].

// A harness fails the test that uses it by panicking, with the step that failed.
#![allow(clippy::unwrap_used)]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ipsat_anchor::bitcoin::address::NetworkUnchecked;
use ipsat_anchor::bitcoin::{Address as BtcAddress, Network};

use crate::btcd::{Btcd, RPC_PASS, RPC_USER};

/// Runs `ipsat ARGS --home HOME` and returns its standard output; panics on failure.
pub fn ipsat(bin: &Path, home: &Path, args: &[&str]) -> String {
    let output = Command::new(bin)
        .args(args)
        .arg("--home")
        .arg(home)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ipsat {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A home for the anchoring service, with its two keys.
pub struct AnchorHome {
    bin: PathBuf,
    /// The home directory.
    pub home: PathBuf,
    /// The RSK address of its `anchorer` key, which the gateway must name as its anchorer.
    pub rsk_address: String,
    /// The regtest address of its `bitcoin` key, which pays for anchors.
    pub bitcoin_address: BtcAddress,
    /// Where the running service serves its Prometheus metrics.
    pub metrics_port: u16,
}

/// How the service anchors.
pub struct AnchorSettings<'a> {
    /// The RSK JSON-RPC the service reads and records through.
    pub rsk: &'a str,
    /// The gateway's address.
    pub gateway: &'a str,
    /// A mature output paying `bitcoin_address`, `txid:vout`.
    pub fund: &'a str,
    /// RSK blocks between anchors at least.
    pub period_rsk_blocks: u64,
    /// Bitcoin confirmations before recording.
    pub confirmations: u64,
}

impl AnchorHome {
    /// Creates `home` with the keys `anchorer` (RSK) and `bitcoin`.
    pub fn create(bin: &Path, home: PathBuf) -> Self {
        std::fs::create_dir_all(home.join("config")).unwrap();
        let rsk_key: serde_json::Value = serde_json::from_str(&ipsat(
            bin,
            &home,
            &["keys", "new", "anchorer", "--output", "json"],
        ))
        .unwrap();
        ipsat(bin, &home, &["keys", "new", "bitcoin"]);
        std::fs::write(
            home.join("config/ipsat.toml"),
            "[anchor]\nbitcoin_key = \"bitcoin\"\n",
        )
        .unwrap();
        let address: serde_json::Value = serde_json::from_str(&ipsat(
            bin,
            &home,
            &["anchor", "address", "--output", "json"],
        ))
        .unwrap();
        let bitcoin_address = address["address"]
            .as_str()
            .unwrap()
            .parse::<BtcAddress<NetworkUnchecked>>()
            .unwrap()
            .require_network(Network::Regtest)
            .unwrap();
        Self {
            bin: bin.to_owned(),
            home,
            rsk_address: rsk_key["address"].as_str().unwrap().to_owned(),
            bitcoin_address,
            metrics_port: std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
        }
    }

    /// Writes the `[gateway]`, `[anchor]` and `[metrics]` sections for `btcd` and `settings`.
    pub fn configure(&self, btcd: &Btcd, settings: &AnchorSettings<'_>) {
        self.configure_with(btcd, settings, "");
    }

    /// As [`Self::configure`], with `extra` lines (`key = value`) in `[anchor]`.
    pub fn configure_with(&self, btcd: &Btcd, settings: &AnchorSettings<'_>, extra: &str) {
        let toml = format!(
            "[gateway]\nrpc = \"{}\"\naddress = \"{}\"\nconfirmations = 2\n\n\
             [anchor]\nbitcoin_rpc = \"{}\"\nbitcoin_user = \"{RPC_USER}\"\n\
             bitcoin_password = \"{RPC_PASS}\"\nbitcoin_key = \"bitcoin\"\nrsk_key = \"anchorer\"\n\
             fund = [\"{}\"]\nperiod_rsk_blocks = {}\nconfirmations = {}\npoll_interval_ms = 300\n\
             {extra}\n\n[metrics]\nlisten = \"127.0.0.1:{}\"\n",
            settings.rsk,
            settings.gateway,
            btcd.rpc_url,
            settings.fund,
            settings.period_rsk_blocks,
            settings.confirmations,
            self.metrics_port,
        );
        std::fs::write(self.home.join("config/ipsat.toml"), toml).unwrap();
    }

    /// Starts `ipsat anchor start` in its own process group, logging to `anchor.log`.
    pub fn start(&self) -> Child {
        self.start_stopping_at(None)
    }

    /// As [`Self::start`], and the service stops itself (SIGSTOP) when it reaches the fault
    /// point `stop_at` (`IPSAT_FAULT_STOP_AT`, see the node's anchoring service).
    pub fn start_stopping_at(&self, stop_at: Option<&str>) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("anchor.log"))
            .unwrap();
        let mut command = Command::new(&self.bin);
        if let Some(point) = stop_at {
            command.env("IPSAT_FAULT_STOP_AT", point);
        }
        command
            .args(["anchor", "start", "--home"])
            .arg(&self.home)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// Runs `ipsat ARGS` in this home.
    pub fn ipsat(&self, args: &[&str]) -> String {
        ipsat(&self.bin, &self.home, args)
    }

    /// The service's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("anchor.log")).unwrap_or_default()
    }
}
