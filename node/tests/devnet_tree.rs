//! `scripts/devnet up` from a clean home starts the whole tree on this machine (anvil as RSK,
//! btcd, the gateway, alpha of 4, beta of 3, the anchoring service): within a bounded time a
//! beta checkpoint is accepted in alpha, an alpha checkpoint on the gateway, and an anchor is
//! confirmed on btcd. The walkthrough `up` prints runs as printed (RBTC from RSK down to beta,
//! a key proven to Bitcoin and verified, value released back up). The explorer, rendered by
//! headless Chromium, names both subnets, shows their heights advancing and the anchor, and
//! checks the walkthrough's proof while refusing a tampered one. The Python example client
//! signs a transfer that lands. The anchoring service, SIGKILLed as an operator might, is
//! reported stalled by `ipsat testnet status`, `ipsat anchor status` and the explorer in
//! Chromium while `ipsat proof --wait` prints the lag and gives up at its `--timeout`; started
//! again with the same command it anchors again and the warning clears.
//! `scripts/devnet down` leaves no process behind.
//!
//! It uses the devnet's fixed ports (8545, 18334, 8080, 9090-9093, 9190-9192, 26600-26737):
//! stop a running devnet before running it.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ipsat_tests::tree;

const EXPLORER: &str = "http://127.0.0.1:8080";
const BITCOIN_RPC: &str = "http://127.0.0.1:18334";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `scripts/devnet <args>` on the devnet in `dir`, with this build's ipsat.
fn devnet(dir: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo().join("scripts/devnet"))
        .args(args)
        .env("IPSAT_BIN", env!("CARGO_BIN_EXE_ipsat"))
        .env("IPSAT_DEVNET_DIR", dir)
        .env("IPSAT_DEVNET_PATIENCE", "600")
        .output()
        .unwrap()
}

/// Takes the devnet down however the test ends.
struct Running(PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        devnet(&self.0, &["down"]);
    }
}

/// Processes whose command line names `dir`.
fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["setup", "alpha0", "beta0", "anchor", "rsk", "bitcoin"] {
        out.push_str(&format!(
            "--- {name} ---\n{}\n",
            ipsat_tests::log_tail(&dir.join("logs").join(format!("{name}.log")))
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_runs_the_whole_tree() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("devnet");
    let running = Running(dir.clone());

    let started = std::time::Instant::now();
    let up = devnet(&dir, &["up"]);
    eprintln!(
        "scripts/devnet up: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let printed = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(
        up.status.success(),
        "scripts/devnet up failed:\n{printed}\n{}\n{}",
        String::from_utf8_lossy(&up.stderr),
        logs(&dir)
    );

    let anchored = tree::wait_for_anchored_tree(EXPLORER, BITCOIN_RPC, Duration::from_secs(480))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs(&dir)));
    eprintln!(
        "first anchor confirmed twice on btcd {:.1} s after up began: {anchored}",
        started.elapsed().as_secs_f64()
    );
    for id in ["/r33/alpha", "/r33/alpha/beta"] {
        let subnet = tree::subnet(&anchored, id).unwrap();
        let validators = subnet["validators"].as_array().unwrap();
        assert_eq!(
            validators.len(),
            if id == "/r33/alpha" { 4 } else { 3 },
            "{id}: {subnet}"
        );
        assert!(
            validators.iter().all(|v| v["power"] == 10),
            "{id}: {subnet}"
        );
    }

    // The walkthrough, exactly as `up` printed it.
    let walkthrough: Vec<&str> = printed
        .lines()
        .skip_while(|l| !l.starts_with("walkthrough:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(
        walkthrough.len() >= 10,
        "no walkthrough printed:\n{printed}"
    );
    let work = home.path().join("walkthrough");
    std::fs::create_dir_all(&work).unwrap();
    let script = format!("set -euo pipefail\n{}\n", walkthrough.join("\n"));
    let ran = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "the walkthrough failed:\n{script}\n{}\n{}\n{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr),
        logs(&dir)
    );
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(out.contains("notes/hello = world"), "{out}");
    let proof = std::fs::read(work.join("hello.ipbt")).unwrap();

    // The explorer in a real browser.
    let first = tree::rendered_dom(EXPLORER).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = tree::rendered_dom(EXPLORER).unwrap();
    let (before, after) = (tree::shown_heights(&first), tree::shown_heights(&second));
    assert_eq!(
        before.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["/r33/alpha", "/r33/alpha/beta"],
        "{first}"
    );
    for ((id, was), (_, now)) in before.iter().zip(&after) {
        assert!(
            now > was,
            "{id} did not advance on the page: {was} then {now}"
        );
    }
    let anchor_cell = second
        .split("id=\"anchor-txid\" class=\"mono\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default();
    assert_eq!(anchor_cell.len(), 64, "no anchor shown: {second}");
    assert!(second.contains("accepted by the gateway") || second.contains("the gateway holds"));
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer.png");
    tree::screenshot(EXPLORER, &shot).unwrap();
    eprintln!("explorer screenshot: {}", shot.display());

    let http = reqwest::Client::new();
    let verdict: serde_json::Value = http
        .post(format!("{EXPLORER}/api/verify"))
        .body(proof.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verdict["verified"], true, "{verdict}");
    assert_eq!(verdict["subnet"], "/r33/alpha/beta", "{verdict}");
    assert!(
        verdict["bitcoin_check"]
            .as_str()
            .unwrap()
            .contains("best chain"),
        "{verdict}"
    );
    let mut tampered = proof;
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    let refused = http
        .post(format!("{EXPLORER}/api/verify"))
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(refused["verified"], false, "{refused}");

    // The Python example client, generated from proto/, signs a transfer in alpha.
    let recipient = "0x00000000000000000000000000000000000000a1";
    let python = Command::new("bash")
        .arg(repo().join("examples/python/run.sh"))
        .args(["--node", "127.0.0.1:9090", "--key-file"])
        .arg(dir.join("keys/faucet.json"))
        .args(["--to", recipient, "--amount", "123456", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "the Python client failed: {}\n{}",
        String::from_utf8_lossy(&python.stdout),
        String::from_utf8_lossy(&python.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&python.stdout).unwrap();
    assert_eq!(report["subnet_id"], "/r33/alpha", "{report}");
    let account = Command::new(env!("CARGO_BIN_EXE_ipsat"))
        .args(["query", "account", recipient, "--prove", "--output", "json"])
        .args(["--node", "http://127.0.0.1:9090", "--home"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(account.status.success(), "{account:?}");
    let account: serde_json::Value = serde_json::from_slice(&account.stdout).unwrap();
    assert_eq!(account["balance"], "123456", "{account}");

    let status = devnet(&dir, &["status"]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("/r33/alpha/beta") && table.contains("anchor  Bitcoin tx"),
        "{table}"
    );

    operator_restarts_the_anchoring_service(&dir).await;

    let down = devnet(&dir, &["down"]);
    assert!(down.status.success(), "{down:?}");
    let left = processes_in(&dir);
    assert!(left.is_empty(), "processes left after down: {left:#?}");
    drop(running);
}

/// The stall warnings the tree's sources show now: the explorer's JSON, `ipsat testnet status`
/// and `ipsat anchor status` in the anchoring service's home.
async fn stall_warnings(dir: &Path) -> (Vec<String>, String, Vec<String>) {
    let view = tree::view(EXPLORER).await.unwrap_or_default();
    let stalled = |errors: &serde_json::Value| -> Vec<String> {
        errors
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .filter(|e| e.starts_with("anchoring stalled"))
            .map(str::to_owned)
            .collect()
    };
    let testnet = Command::new(env!("CARGO_BIN_EXE_ipsat"))
        .args(["testnet", "status"])
        .output()
        .unwrap();
    let anchor = Command::new(env!("CARGO_BIN_EXE_ipsat"))
        .args(["anchor", "status", "--output", "json", "--home"])
        .arg(dir.join("anchor"))
        .output()
        .unwrap();
    let anchor: serde_json::Value = serde_json::from_slice(&anchor.stdout).unwrap_or_default();
    (
        stalled(&view["errors"]),
        String::from_utf8_lossy(&testnet.stdout).into_owned(),
        stalled(&anchor["errors"]),
    )
}

/// SIGKILLs the devnet's anchoring service, waits for every source to report the stall, starts
/// it again with the command the devnet runs, and waits for a new anchor and the all-clear.
async fn operator_restarts_the_anchoring_service(dir: &Path) {
    let pidfile = dir.join("run/anchor.pid");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the devnet's anchoring service, whose pid its pidfile names.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let view = tree::view(EXPLORER).await.unwrap();
    let before = view["gateway"]["anchor"]["btc_txid"].clone();
    // A proof of the walkthrough's key waited for meanwhile: no anchor can cover beta's height
    // now, so it gives up at its --timeout, saying what is missing and how old the last anchor is.
    let proof_wait = Command::new(env!("CARGO_BIN_EXE_ipsat"))
        .args([
            "proof",
            "/r33/alpha/beta",
            "notes",
            "hello",
            "--wait",
            "--timeout",
            "25",
        ])
        .args([
            "--node",
            "http://127.0.0.1:9190",
            "--parent-node",
            "http://127.0.0.1:9090",
        ])
        .arg("-o")
        .arg(dir.join("never.ipbt"))
        .env("IPSAT_HOME", dir)
        .env("IPSAT_RSK_RPC", "http://127.0.0.1:8545")
        .env(
            "IPSAT_GATEWAY",
            view["gateway"]["address"].as_str().unwrap(),
        )
        .env("IPSAT_BITCOIN_RPC", BITCOIN_RPC)
        .env("IPSAT_BITCOIN_USER", "ipsat")
        .env("IPSAT_BITCOIN_PASSWORD", "ipsat")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    ipsat_tests::wait_until(
        "the stall reported everywhere",
        Duration::from_secs(300),
        || async {
            let (explorer, testnet, anchor) = stall_warnings(dir).await;
            let reported = !explorer.is_empty()
                && testnet.contains("error: anchoring stalled")
                && !anchor.is_empty();
            (
                reported,
                format!("explorer {explorer:?}, anchor status {anchor:?}"),
            )
        },
    )
    .await;
    eprintln!(
        "stall reported {:.0} s after the anchoring service was killed",
        started.elapsed().as_secs_f64()
    );
    let waited = proof_wait.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&waited.stderr);
    assert!(!waited.status.success(), "the proof was built: {said}");
    assert!(
        said.contains("waiting (") && said.contains("last anchored root"),
        "no lag in the progress: {said}"
    );
    assert!(said.contains("gave up after 25 s (--timeout)"), "{said}");
    assert!(!dir.join("never.ipbt").exists());
    let dom = tree::rendered_dom(EXPLORER).unwrap();
    assert!(
        dom.contains("anchoring stalled"),
        "no warning on the page: {dom}"
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer-stalled.png");
    tree::screenshot(EXPLORER, &shot).unwrap();
    eprintln!("explorer screenshot with the stall: {}", shot.display());

    // The same command the devnet launches, its pid where `down` finds it.
    let relaunch = format!(
        "setsid '{}' anchor start --home '{}' >>'{}' 2>&1 </dev/null & echo $! >'{}'",
        env!("CARGO_BIN_EXE_ipsat"),
        dir.join("anchor").display(),
        dir.join("logs/anchor.log").display(),
        pidfile.display()
    );
    assert!(Command::new("bash")
        .arg("-c")
        .arg(&relaunch)
        .status()
        .unwrap()
        .success());
    let restarted = std::time::Instant::now();
    ipsat_tests::wait_until(
        "a new anchor and no stall",
        Duration::from_secs(300),
        || async {
            let view = tree::view(EXPLORER).await.unwrap_or_default();
            let anchor = view["gateway"]["anchor"]["btc_txid"].clone();
            let (explorer, _, anchor_status) = stall_warnings(dir).await;
            (
                anchor != before && explorer.is_empty() && anchor_status.is_empty(),
                format!("anchor {anchor}, explorer {explorer:?}, anchor status {anchor_status:?}"),
            )
        },
    )
    .await;
    eprintln!(
        "a new anchor {:.0} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    let log = std::fs::read_to_string(dir.join("logs/anchor.log")).unwrap();
    assert!(
        log.contains("[anchor] fund: output") && log.contains("is spent"),
        "the spent funding output was not skipped on the restart:\n{}",
        ipsat_tests::log_tail(&dir.join("logs/anchor.log"))
    );
    // The service's own gauge follows at its next step.
    ipsat_tests::wait_until(
        "the service's stall gauge cleared",
        Duration::from_secs(60),
        || async {
            let metrics = match reqwest::get("http://127.0.0.1:9480/metrics").await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            let gauge = metrics
                .lines()
                .find(|l| l.starts_with("ipsat_anchor_stalled "))
                .unwrap_or("no ipsat_anchor_stalled")
                .to_owned();
            (gauge == "ipsat_anchor_stalled 0", gauge)
        },
    )
    .await;
}
