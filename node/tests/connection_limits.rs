//! A node under a flood of idle connections: 1,100 to its gRPC port and 1,100 to its metrics
//! port, held open while it keeps committing blocks. Its file descriptors stay bounded by the
//! connection limits, it does not spin, the idle connections are closed after the first-byte
//! deadline, and clients are served again once the flood is gone.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::time::{Duration, Instant};

use ipsat_tests::Testnet;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

const BASE: u16 = 27700;
const FLOOD: usize = 1_100;

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Opens up to `n` connections to `port`, each given a second; returns those that opened.
async fn flood(port: u16, n: usize) -> Vec<TcpStream> {
    let attempts = (0..n).map(|_| async move {
        tokio::time::timeout(
            Duration::from_secs(1),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        .ok()
        .and_then(Result::ok)
    });
    futures::future::join_all(attempts)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_floods_are_bounded_and_do_not_stop_the_chain() {
    // This test process holds thousands of sockets itself.
    let limit = libc::rlimit {
        rlim_cur: 16_384,
        rlim_max: 16_384,
    };
    // SAFETY: setrlimit(2) on this process with a valid struct.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let bin = env!("CARGO_BIN_EXE_ipsat");
    let mut net = Testnet::init(bin.as_ref(), 1, BASE).unwrap();
    net.start(0).unwrap();
    let start = net
        .wait_for_height(0, 2, Duration::from_secs(60))
        .await
        .unwrap();
    let pid = net.pid(0).unwrap();
    let baseline = open_files(pid);
    let grpc = net.grpc_port(0);
    let metrics = BASE + 450;

    let mut held = flood(grpc, FLOOD).await;
    held.extend(flood(metrics, FLOOD).await);
    eprintln!(
        "{} of {} connections opened (the rest wait in or overflow the kernel backlog)",
        held.len(),
        2 * FLOOD
    );
    let ticks_before = cpu_ticks(pid);
    let measured_from = Instant::now();
    // Blocks keep committing under the flood.
    net.wait_for_height(0, start + 3, Duration::from_secs(60))
        .await
        .unwrap();
    let files = open_files(pid);
    eprintln!("open files: {baseline} before the flood, {files} under it");
    assert!(
        files <= baseline + 512 + 16 + 16,
        "{files} open files: the connection limits did not hold"
    );
    // No busy loop: well under one core while the flood waits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks = cpu_ticks(pid) - ticks_before;
    // SAFETY: sysconf(3) has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let share = ticks as f64 / per_second / measured_from.elapsed().as_secs_f64();
    eprintln!(
        "node CPU under the flood: {:.0}% of one core",
        share * 100.0
    );
    assert!(share < 0.6, "the node used {:.0}% of a core", share * 100.0);

    // The node closes connections that stay silent past the first-byte deadline (10 s).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut closed = 0;
    for stream in held.iter_mut().take(200) {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(closed > 0, "no idle connection was closed by the node");
    drop(held);

    // Clients are served again.
    let mut client = net.client(0).await.unwrap();
    assert!(client.status().await.unwrap().height > start);
    let body = reqwest::get(format!("http://127.0.0.1:{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("ipsat_block_height"));
    let missing = reqwest::get(format!("http://127.0.0.1:{metrics}/nothing"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
