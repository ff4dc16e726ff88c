//! Bad RPC responses give errors naming the call, never panics. A tiny HTTP server answers
//! each JSON-RPC method with a canned (status, body).

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

use std::collections::HashMap;
use std::sync::Arc;

use ipsat_anchor::bitcoin::consensus::encode::serialize_hex;
use ipsat_anchor::bitcoin::hashes::Hash;
use ipsat_anchor::bitcoin::{Address, Block, BlockHash, CompressedPublicKey, Network, Txid};
use ipsat_anchor::{RpcClient, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Routes = Arc<HashMap<&'static str, (u16, String)>>;

async fn serve(routes: HashMap<&'static str, (u16, String)>) -> String {
    let routes: Routes = Arc::new(routes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read headers, then Content-Length bytes of body.
                let body = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse().unwrap())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + len {
                            let n = sock.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                };
                let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let method = req["method"].as_str().unwrap_or("").to_string();
                let (status, body) = routes.get(method.as_str()).cloned().unwrap_or((
                    200,
                    r#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":1}"#
                        .to_string(),
                ));
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

fn ok(result: serde_json::Value) -> (u16, String) {
    (
        200,
        serde_json::json!({"result": result, "error": null, "id": 1}).to_string(),
    )
}

fn client(url: &str) -> RpcClient {
    RpcClient::new(url, "u", "p").unwrap()
}

fn assert_malformed(e: RpcError, method: &str) {
    let msg = e.to_string();
    assert!(
        matches!(&e, RpcError::Malformed { method: m, .. } if m == method),
        "{msg}"
    );
    assert!(msg.contains(method), "{msg}");
}

#[tokio::test]
async fn unreachable_node_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = client(&format!("http://127.0.0.1:{port}"))
        .get_block_count()
        .await
        .unwrap_err();
    assert!(matches!(e, RpcError::Transport { .. }), "{e}");
    assert!(e.to_string().contains("getblockcount"), "{e}");
}

#[tokio::test]
async fn malformed_responses_are_errors() {
    let real_block: Block =
        ipsat_anchor::bitcoin::blockdata::constants::genesis_block(Network::Regtest);
    let hex = serialize_hex(&real_block);
    let url = serve(HashMap::from([
        ("getblockcount", ok("eleven".into())),
        ("getblockhash", ok("zz-not-a-hash".into())),
        ("getblock", ok(hex[..hex.len() - 10].into())),
        ("getblockheader", ok(hex[..160].into())),
        ("getrawtransaction", ok("00".into())),
        ("sendrawtransaction", (200, "<html>not json</html>".into())),
        ("getrawmempool", ok(serde_json::json!([1, 2]))),
    ]))
    .await;
    let c = client(&url);
    assert_malformed(c.get_block_count().await.unwrap_err(), "getblockcount");
    assert_malformed(c.get_block_hash(1).await.unwrap_err(), "getblockhash");
    // Truncated block hex.
    assert_malformed(
        c.get_block(&real_block.block_hash()).await.unwrap_err(),
        "getblock",
    );
    // A valid header, but not the one asked for.
    assert_malformed(
        c.get_block_header(&BlockHash::all_zeros())
            .await
            .unwrap_err(),
        "getblockheader",
    );
    assert_malformed(
        c.get_raw_transaction(&Txid::all_zeros()).await.unwrap_err(),
        "getrawtransaction",
    );
    assert_malformed(
        c.send_raw_transaction(&real_block.txdata[0])
            .await
            .unwrap_err(),
        "sendrawtransaction",
    );
    assert_malformed(c.get_raw_mempool().await.unwrap_err(), "getrawmempool");
}

#[tokio::test]
async fn a_block_that_is_not_the_one_asked_for_is_refused() {
    let genesis = ipsat_anchor::bitcoin::blockdata::constants::genesis_block(Network::Regtest);
    let url = serve(HashMap::from([(
        "getblock",
        ok(serialize_hex(&genesis).into()),
    )]))
    .await;
    let c = client(&url);
    assert!(c.get_block(&genesis.block_hash()).await.is_ok());
    assert_malformed(
        c.get_block(&BlockHash::all_zeros()).await.unwrap_err(),
        "getblock",
    );
}

#[tokio::test]
async fn node_and_http_errors_keep_their_meaning() {
    let url = serve(HashMap::from([
        // Bitcoin Core style: HTTP 500 with a JSON-RPC error body.
        (
            "getblockhash",
            (
                500,
                r#"{"result":null,"error":{"code":-8,"message":"Block height out of range"},"id":1}"#
                    .into(),
            ),
        ),
        // Wrong credentials: btcd answers 401 with a plain-text body.
        ("getblockcount", (401, "401 Unauthorized.\n".into())),
        // btcd style: HTTP 200 with an error object.
        (
            "sendrawtransaction",
            (
                200,
                r#"{"result":null,"error":{"code":-22,"message":"TX rejected: already have transaction"},"id":1}"#
                    .into(),
            ),
        ),
    ]))
    .await;
    let c = client(&url);
    let e = c.get_block_hash(10_000).await.unwrap_err();
    assert_eq!(e.node_code(), Some(-8), "{e}");
    assert!(e.to_string().contains("getblockhash") && e.to_string().contains("out of range"));
    let e = c.get_block_count().await.unwrap_err();
    assert!(matches!(e, RpcError::Http { status: 401, .. }), "{e}");
    let genesis = ipsat_anchor::bitcoin::blockdata::constants::genesis_block(Network::Regtest);
    let e = c
        .send_raw_transaction(&genesis.txdata[0])
        .await
        .unwrap_err();
    assert_eq!(e.node_code(), Some(-22), "{e}");
    assert!(e.to_string().contains("already have"), "{e}");
}

#[tokio::test]
async fn generate_falls_back_to_generatetoaddress() {
    let pk = CompressedPublicKey::from_slice(
        &hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798").unwrap(),
    )
    .unwrap();
    let addr = Address::p2wpkh(&pk, Network::Regtest);
    let hash = BlockHash::all_zeros().to_string();
    // No `generate` route: the server answers "Method not found" as Bitcoin Core does.
    let url = serve(HashMap::from([(
        "generatetoaddress",
        ok(serde_json::json!([hash])),
    )]))
    .await;
    let got = client(&url).generate(1, &addr).await.unwrap();
    assert_eq!(got, vec![BlockHash::all_zeros()]);
    // Neither method: the error says both failed.
    let url = serve(HashMap::new()).await;
    let e = client(&url).generate(1, &addr).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("generate") && msg.contains("generatetoaddress"),
        "{msg}"
    );
}
