//! The anchorer against a real btcd regtest node (started by each test).

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

mod common;

use std::time::Duration;

use common::{txs_committing, Harness, ACTIVATION_HEIGHT, CONFIRMATIONS, FEE_RATE};
use ipsat_anchor::bitcoin::hashes::{sha256d, Hash};
use ipsat_anchor::bitcoin::pow::{Target, Work};
use ipsat_anchor::bitcoin::{Network, OutPoint};
use ipsat_anchor::proof::PROOF_MAGIC;
use ipsat_anchor::state::AnchorState;
use ipsat_anchor::tx::{build_anchor_tx, AnchorKey, Utxo};
use ipsat_anchor::{
    anchor_digest, anchor_script, AnchorError, AnchorProof, AnchorStatus, ChainTrust, ProofError,
    ScriptKind,
};
use serde_json::{json, Value};

/// The one output in `utxos`.
fn only(utxos: &[Utxo]) -> Utxo {
    assert_eq!(utxos.len(), 1, "expected exactly one output: {utxos:?}");
    utxos[0].clone()
}

fn digest(n: u64) -> [u8; 32] {
    anchor_digest(33, 1_000 + n, [n as u8; 32], [0xb7; 32])
}

/// Flips every byte of `bytes` (XOR 0x01 and XOR 0xff) and returns the positions where the
/// mutated encoding still decodes and verifies; `fix_checksum` recomputes the checksum so the
/// verifier itself, not the checksum, has to catch the change.
/// The work of `n` regtest blocks (all at regtest's fixed, easiest target).
fn work(n: u32) -> ChainTrust {
    let one = Target::MAX_ATTAINABLE_REGTEST.to_work();
    let mut total = Work::from_be_bytes([0; 32]);
    for _ in 0..n {
        total = total + one;
    }
    ChainTrust::MinimumWork(total)
}

fn surviving_flips(bytes: &[u8], d: &[u8; 32], confs: u32, fix_checksum: bool) -> Vec<usize> {
    let mut survivors = Vec::new();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0xff] {
            let mut b = bytes.to_vec();
            b[i] ^= mask;
            if fix_checksum && i < b.len() - 4 {
                let n = b.len() - 4;
                let sum = sha256d::Hash::hash(&b[..n]);
                b[n..].copy_from_slice(&sum.as_byte_array()[..4]);
            }
            if let Ok(p) = AnchorProof::decode(&b) {
                if p.verify(d, &work(confs), Network::Regtest).is_ok() {
                    survivors.push(i);
                }
            }
        }
    }
    survivors
}

#[tokio::test]
async fn anchor_is_mined_and_its_proof_verifies() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let rpc = h.node.rpc();
    let mut a = h.open_funded(1).await;
    let funded = only(&a.state().utxos);
    assert_eq!(funded.value_sat, 50 * 100_000_000);

    let d = digest(1);
    let id = a.anchor(d).await.unwrap();
    assert_eq!(id.0, d);
    let fl = a.state().in_flight.clone().unwrap();
    let v = &fl.versions[0];
    println!(
        "P2WPKH anchor on btcd: txid {} vsize {} vB fee {} sat at {FEE_RATE} sat/vB",
        v.txid, v.vsize, v.fee_sat
    );
    assert!(v.vsize <= 154);
    assert_eq!(v.fee_sat, FEE_RATE * v.vsize);
    assert!(
        h.node.mempool().await.contains(&v.txid),
        "btcd did not accept the anchor"
    );
    // The saved state already holds the broadcast transaction.
    let saved = AnchorState::load(&h.state_path()).unwrap().unwrap();
    assert_eq!(saved.in_flight.unwrap().versions[0].txid, v.txid);

    assert!(matches!(
        a.poll().await.unwrap(),
        AnchorStatus::Pending { .. }
    ));
    let mined = h.node.mine(1).await;
    match a.poll().await.unwrap() {
        AnchorStatus::InBlock {
            block_hash,
            confirmations,
            txid,
            ..
        } => {
            assert_eq!(block_hash, mined[0]);
            assert_eq!(confirmations, 1);
            assert_eq!(txid, v.txid);
        }
        s => panic!("expected InBlock, got {s:?}"),
    }
    // A second digest waits for the first.
    assert!(matches!(
        a.anchor(digest(2)).await,
        Err(AnchorError::Busy { .. })
    ));
    h.node.mine(u64::from(CONFIRMATIONS) - 1).await;
    let confirmed = match a.poll().await.unwrap() {
        AnchorStatus::Confirmed(c) => c,
        s => panic!("expected Confirmed, got {s:?}"),
    };
    assert_eq!(confirmed.txid, v.txid);
    assert_eq!(confirmed.block_hash, mined[0]);
    assert_eq!(confirmed.height, ACTIVATION_HEIGHT + 1);
    // The change is the next UTXO, and the state file says so.
    let next = only(&a.state().utxos);
    assert_eq!(next.outpoint, OutPoint::new(v.txid, 1));
    assert_eq!(next.value_sat, funded.value_sat - v.fee_sat);
    let saved = AnchorState::load(&h.state_path()).unwrap().unwrap();
    assert_eq!(saved.confirmed, vec![confirmed.clone()]);
    assert!(saved.in_flight.is_none());
    // The node agrees the transaction carries the digest.
    let onchain = rpc.get_raw_transaction(&v.txid).await.unwrap();
    assert_eq!(onchain.output[0].script_pubkey, anchor_script(&d));

    // The proof.
    let proof = a.proof(&id, None).await.unwrap();
    let ok = proof
        .verify(&d, &work(CONFIRMATIONS), Network::Regtest)
        .unwrap();
    assert_eq!(ok.txid, v.txid);
    assert_eq!(ok.block_hash, mined[0]);
    assert_eq!(ok.confirmations, CONFIRMATIONS as usize);
    assert_eq!(
        ok.tip_hash,
        rpc.get_block_hash(rpc.get_block_count().await.unwrap())
            .await
            .unwrap()
    );
    let bytes = proof.encode();
    println!(
        "encoded proof: {} bytes ({} headers)",
        bytes.len(),
        proof.headers.len()
    );
    let decoded = AnchorProof::decode(&bytes).unwrap();
    assert_eq!(decoded.encode(), bytes);
    decoded
        .verify(&d, &work(CONFIRMATIONS), Network::Regtest)
        .unwrap();
    assert!(matches!(
        decoded.verify(&digest(99), &work(1), Network::Regtest),
        Err(ProofError::DigestNotFound { .. })
    ));
    // Too little work on top fails; so does a trusted block the headers do not reach.
    assert!(matches!(
        decoded.verify(&d, &work(CONFIRMATIONS + 1), Network::Regtest),
        Err(ProofError::NotEnoughWork { .. })
    ));
    let tip = ChainTrust::Extends(ok.tip_hash);
    assert!(decoded.verify(&d, &tip, Network::Regtest).is_ok());
    let genesis = rpc.get_block_hash(0).await.unwrap();
    assert_eq!(
        decoded.verify(&d, &ChainTrust::Extends(genesis), Network::Regtest),
        Err(ProofError::TrustedBlockMissing(genesis))
    );
    let short = a.proof(&id, Some(1)).await.unwrap();
    assert_eq!(short.headers.len(), 1);
    assert!(short.verify(&d, &work(1), Network::Regtest).is_ok());
    assert!(short.verify(&d, &work(2), Network::Regtest).is_err());

    // Flipping any single byte of the encoding makes decode or verify fail.
    assert_eq!(&bytes[..4], PROOF_MAGIC);
    let survivors = surviving_flips(&bytes, &d, CONFIRMATIONS, false);
    assert!(
        survivors.is_empty(),
        "mutations at {survivors:?} still verify"
    );
    // Without the checksum's help, only the last header's own fields (all but prev_blockhash:
    // no later header or merkle path links to them) can survive, and only when the mutated header still meets
    // regtest's trivial target (about half of all hashes do). Everything else is caught by the
    // hash links, the merkle path or the encoding rules.
    let last_header = bytes.len() - 4 - 80;
    let survivors = surviving_flips(&bytes, &d, CONFIRMATIONS, true);
    println!(
        "with recomputed checksum, {} of {} single-byte mutations verify, all in the tip \
         header's unlinked fields",
        survivors.len(),
        bytes.len() * 2
    );
    for i in &survivors {
        let off = i.checked_sub(last_header);
        assert!(
            off.is_some_and(|o| !(4..36).contains(&o)),
            "mutation at byte {i} verifies: it is not in the tip header's unlinked fields"
        );
    }

    // A restart finds the anchor confirmed and spends the change for the next one.
    drop(a);
    let mut a = h.open().await;
    assert_eq!(a.state().confirmed, vec![confirmed.clone()]);
    assert_eq!(
        a.anchor(d).await.unwrap(),
        id,
        "a confirmed digest is not anchored again"
    );
    assert!(a.state().in_flight.is_none());
    let d2 = digest(2);
    a.anchor(d2).await.unwrap();
    let fl2 = a.state().in_flight.clone().unwrap();
    assert_eq!(fl2.spends, vec![next.clone()]);
    h.node.mine(u64::from(CONFIRMATIONS)).await;
    let c2 = a
        .wait_confirmed(Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(c2.txid, fl2.versions[0].txid);
    let p2 = a.proof(&c2.id, None).await.unwrap();
    p2.verify(&d2, &work(CONFIRMATIONS), Network::Regtest)
        .unwrap();
    // The first proof is deeper now.
    let p1 = a.proof(&id, None).await.unwrap();
    assert_eq!(
        p1.verify(&d, &work(1), Network::Regtest)
            .unwrap()
            .confirmations,
        6
    );
}

#[tokio::test]
async fn crash_between_signing_and_broadcast_leaves_exactly_one_anchor() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let rpc = h.node.rpc();
    let mut a = h.open_funded(1).await;
    let d = digest(7);

    // Stop the anchorer after it saved the signed transaction, before it broadcast it.
    let (id, fresh) = a.sign(d).await.unwrap();
    assert!(fresh);
    drop(a);
    let saved = AnchorState::load(&h.state_path()).unwrap().unwrap();
    let fl = saved
        .in_flight
        .clone()
        .expect("the signed anchor was saved");
    assert_eq!(fl.id, id);
    assert_eq!(fl.versions.len(), 1);
    assert_eq!(fl.versions[0].broadcast_attempts, 0);
    let txid = fl.versions[0].txid;
    assert!(h.node.mempool().await.is_empty(), "nothing was broadcast");

    // Restart: the same signed transaction is broadcast, nothing new is signed.
    let mut a = h.open().await;
    assert_eq!(h.node.mempool().await, vec![txid]);
    assert_eq!(a.anchor(d).await.unwrap(), id);
    let fl = a.state().in_flight.clone().unwrap();
    assert_eq!(fl.versions.len(), 1);
    assert_eq!(fl.versions[0].txid, txid);
    assert_eq!(h.node.mempool().await, vec![txid]);
    // A second restart before mining changes nothing either.
    drop(a);
    let mut a = h.open().await;
    assert_eq!(a.state().in_flight.as_ref().unwrap().versions.len(), 1);

    h.node.mine(u64::from(CONFIRMATIONS)).await;
    let c = a
        .wait_confirmed(Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(c.txid, txid);

    // The chain holds exactly one transaction committing the digest.
    let found = txs_committing(&rpc, 1, &d).await;
    assert_eq!(found, vec![(ACTIVATION_HEIGHT + 1, txid)]);
    let saved = AnchorState::load(&h.state_path()).unwrap().unwrap();
    assert_eq!(saved.confirmed.len(), 1);
    assert_eq!(saved.confirmed[0].txid, txid);
    assert!(saved.in_flight.is_none());
    a.proof(&id, None)
        .await
        .unwrap()
        .verify(&d, &work(CONFIRMATIONS), Network::Regtest)
        .unwrap();
}

#[tokio::test]
async fn rbf_bump_replaces_the_unconfirmed_anchor() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let rpc = h.node.rpc();
    let mut a = h.open_funded(1).await;
    let d = digest(3);
    a.anchor(d).await.unwrap();
    let original = a.state().in_flight.clone().unwrap().versions[0].clone();
    assert_eq!(h.node.mempool().await, vec![original.txid]);

    assert!(matches!(
        a.bump_fee(FEE_RATE).await,
        Err(AnchorError::FeeRateNotHigher { .. })
    ));
    let replacement_txid = match a.bump_fee(5).await {
        Ok(t) => t,
        Err(e) => panic!("btcd refused the BIP125 replacement: {e}"),
    };
    let fl = a.state().in_flight.clone().unwrap();
    assert_eq!(fl.versions.len(), 2);
    let replacement = fl.versions[1].clone();
    assert_eq!(replacement.txid, replacement_txid);
    assert!(replacement.fee_sat >= original.fee_sat + replacement.vsize);
    // Same input, checked by libbitcoinconsensus against the spent output.
    let tx = replacement.tx().unwrap();
    assert_eq!(tx.input[0].previous_output, only(&fl.spends).outpoint);
    ipsat_anchor::tx::verify_spend(&tx, &fl.spends).unwrap();
    println!(
        "RBF: original {} ({} sat) replaced by {} ({} sat)",
        original.txid, original.fee_sat, replacement.txid, replacement.fee_sat
    );
    // The mempool holds the replacement, not the original.
    assert_eq!(h.node.mempool().await, vec![replacement.txid]);
    // Replacing the original again with the original is refused by the node...
    let err = rpc
        .send_raw_transaction(&original.tx().unwrap())
        .await
        .unwrap_err();
    println!("btcd on re-sending the replaced original: {err}");
    // ...and a restart rebroadcasts the newest version, not the original.
    drop(a);
    let mut a = h.open().await;
    assert_eq!(h.node.mempool().await, vec![replacement.txid]);

    let mined = h.node.mine(1).await;
    match a.poll().await.unwrap() {
        AnchorStatus::InBlock {
            txid, block_hash, ..
        } => {
            assert_eq!(txid, replacement.txid);
            assert_eq!(block_hash, mined[0]);
        }
        s => panic!("expected InBlock, got {s:?}"),
    }
    let block = rpc.get_block(&mined[0]).await.unwrap();
    let ids: Vec<_> = block.txdata.iter().map(|t| t.compute_txid()).collect();
    assert!(ids.contains(&replacement.txid) && !ids.contains(&original.txid));
    assert!(matches!(
        a.bump_fee(10).await,
        Err(AnchorError::AlreadyMined { .. })
    ));
    h.node.mine(u64::from(CONFIRMATIONS) - 1).await;
    let c = match a.poll().await.unwrap() {
        AnchorStatus::Confirmed(c) => c,
        s => panic!("expected Confirmed, got {s:?}"),
    };
    assert_eq!(c.txid, replacement.txid);
    assert_eq!(c.fee_sat, replacement.fee_sat);
    assert_eq!(
        only(&a.state().utxos).value_sat,
        only(&fl.spends).value_sat - replacement.fee_sat
    );
    assert_eq!(txs_committing(&rpc, 1, &d).await.len(), 1);
}

#[tokio::test]
async fn reorg_sends_the_anchor_back_to_pending_and_it_is_mined_again() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let rpc = h.node.rpc();
    let mut a = h.open_funded(1).await;
    let d = digest(4);
    let id = a.anchor(d).await.unwrap();
    let txid = a.state().in_flight.clone().unwrap().versions[0].txid;

    let first = h.node.mine(1).await[0];
    assert!(matches!(
        a.poll().await.unwrap(),
        AnchorStatus::InBlock { block_hash, .. } if block_hash == first
    ));

    let r: Value = rpc
        .call("invalidateblock", &[json!(first.to_string())])
        .await
        .unwrap();
    assert!(r.is_null(), "{r}");
    assert_eq!(rpc.get_block_count().await.unwrap(), ACTIVATION_HEIGHT);
    match a.poll().await.unwrap() {
        AnchorStatus::Pending { txid: t, .. } => assert_eq!(t, txid),
        s => panic!("expected Pending after the reorg, got {s:?}"),
    }
    assert!(a.state().in_flight.as_ref().unwrap().included.is_none());
    assert!(h.node.mempool().await.contains(&txid));

    let second = h.node.mine(1).await[0];
    assert_ne!(second, first);
    match a.poll().await.unwrap() {
        AnchorStatus::InBlock {
            block_hash,
            txid: t,
            height,
            ..
        } => {
            assert_eq!(block_hash, second);
            assert_eq!(t, txid);
            assert_eq!(height, ACTIVATION_HEIGHT + 1);
        }
        s => panic!("expected InBlock again, got {s:?}"),
    }
    h.node.mine(u64::from(CONFIRMATIONS) - 1).await;
    let c = match a.poll().await.unwrap() {
        AnchorStatus::Confirmed(c) => c,
        s => panic!("expected Confirmed, got {s:?}"),
    };
    assert_eq!(c.block_hash, second);
    let p = a.proof(&id, None).await.unwrap();
    assert_eq!(p.headers[0].block_hash(), second);
    p.verify(&d, &work(CONFIRMATIONS), Network::Regtest)
        .unwrap();
    assert_eq!(
        txs_committing(&rpc, 1, &d).await,
        vec![(ACTIVATION_HEIGHT + 1, txid)]
    );
}

#[tokio::test]
async fn p2tr_anchor_is_mined_and_its_proof_verifies() {
    let h = Harness::new(ScriptKind::P2tr).await;
    let mut a = h.open_funded(1).await;
    assert!(a.address().to_string().starts_with("bcrt1p"));
    let d = digest(5);
    let id = a.anchor(d).await.unwrap();
    let v = a.state().in_flight.clone().unwrap().versions[0].clone();
    println!(
        "P2TR anchor on btcd: txid {} vsize {} vB fee {} sat at {FEE_RATE} sat/vB",
        v.txid, v.vsize, v.fee_sat
    );
    assert_eq!(v.vsize, 154);
    assert_eq!(h.node.mempool().await, vec![v.txid]);
    h.node.mine(u64::from(CONFIRMATIONS)).await;
    let c = match a.poll().await.unwrap() {
        AnchorStatus::Confirmed(c) => c,
        s => panic!("expected Confirmed, got {s:?}"),
    };
    assert_eq!(c.txid, v.txid);
    a.proof(&id, None)
        .await
        .unwrap()
        .verify(&d, &work(CONFIRMATIONS), Network::Regtest)
        .unwrap();
}

/// Funds can be added at any time, also while an anchor is in flight; the next anchor spends
/// everything the anchorer holds, so anchoring never stops because change ran low.
#[tokio::test]
async fn a_top_up_while_in_flight_is_spent_by_the_next_anchor() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let mut a = h.open_funded(1).await;
    let first = only(&a.state().utxos);
    a.anchor(digest(11)).await.unwrap();

    let top_up = a.fund(h.coinbase(2).await).await.unwrap();
    assert_eq!(a.state().utxos, vec![top_up.clone()]);
    // Outputs the anchorer already has are refused: the top-up again, the input in flight.
    for known in [top_up.outpoint, first.outpoint] {
        assert!(matches!(
            a.fund(known).await,
            Err(AnchorError::AlreadyFunded(o)) if o == known
        ));
    }
    // The top-up survives a restart.
    drop(a);
    let mut a = h.open().await;
    assert_eq!(a.state().utxos, vec![top_up.clone()]);
    h.node.mine(u64::from(CONFIRMATIONS)).await;
    a.wait_confirmed(Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    let held = a.state().utxos.clone();
    assert_eq!(held.len(), 2, "the top-up and the first anchor's change");

    let d = digest(12);
    let id = a.anchor(d).await.unwrap();
    let fl = a.state().in_flight.clone().unwrap();
    assert_eq!(fl.spends, held);
    let tx = fl.versions[0].tx().unwrap();
    assert_eq!(tx.input.len(), 2);
    ipsat_anchor::tx::verify_spend(&tx, &fl.spends).unwrap();
    println!(
        "two-input anchor on btcd: {} vB, {} sat",
        fl.versions[0].vsize, fl.versions[0].fee_sat
    );
    h.node.mine(u64::from(CONFIRMATIONS)).await;
    let c = a
        .wait_confirmed(Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    let change = only(&a.state().utxos);
    assert_eq!(change.outpoint, OutPoint::new(c.txid, 1));
    let total: u64 = held.iter().map(|u| u.value_sat).sum();
    assert_eq!(change.value_sat, total - c.fee_sat);
    a.proof(&id, None)
        .await
        .unwrap()
        .verify(&d, &work(CONFIRMATIONS), Network::Regtest)
        .unwrap();
}

/// The anchorer's key spends its input elsewhere: the anchor waits while that spend could still
/// be reorganised away, is abandoned once it is final, and the digest is anchored again from
/// what came back, exactly once.
#[tokio::test]
async fn a_conflicting_spend_abandons_the_anchor_and_it_is_anchored_again() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let rpc = h.node.rpc();
    let mut a = h.open_funded(1).await;
    let funded = only(&a.state().utxos);
    let d = digest(21);
    let id = a.anchor(d).await.unwrap();

    // Someone else with the key: a different transaction at a higher fee replaces ours.
    let key = AnchorKey::new(h.secret, h.kind);
    let rogue = build_anchor_tx(&key, std::slice::from_ref(&funded), &digest(99), 10).unwrap();
    let rogue_txid = rogue.tx.compute_txid();
    rpc.send_raw_transaction(&rogue.tx).await.unwrap();
    assert_eq!(h.node.mempool().await, vec![rogue_txid]);
    h.node.mine(1).await;
    match a.poll().await.unwrap() {
        AnchorStatus::Conflicted {
            id: cid,
            txid,
            confirmations,
        } => assert_eq!((cid, txid, confirmations), (id, rogue_txid, 1)),
        s => panic!("expected Conflicted, got {s:?}"),
    }
    // Remembered across a restart, which broadcasts nothing.
    drop(a);
    let mut a = h.open().await;
    assert!(a.state().in_flight.as_ref().unwrap().conflict.is_some());
    assert!(h.node.mempool().await.is_empty());

    h.node.mine(u64::from(CONFIRMATIONS) - 1).await;
    let abandoned = match a.poll().await.unwrap() {
        AnchorStatus::Abandoned(ab) => ab,
        s => panic!("expected Abandoned, got {s:?}"),
    };
    assert_eq!(
        (abandoned.id, abandoned.conflicting_txid),
        (id, Some(rogue_txid))
    );
    let saved = AnchorState::load(&h.state_path()).unwrap().unwrap();
    assert!(saved.in_flight.is_none());
    assert_eq!(saved.abandoned, vec![abandoned]);
    // The rogue transaction paid its change to the anchorer's script: that is the anchorer's.
    let back = only(&saved.utxos);
    assert_eq!(back.outpoint, OutPoint::new(rogue_txid, 1));
    assert_eq!(back.value_sat, funded.value_sat - rogue.fee.to_sat());

    assert_eq!(a.anchor(d).await.unwrap(), id);
    h.node.mine(u64::from(CONFIRMATIONS)).await;
    let c = a
        .wait_confirmed(Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        txs_committing(&rpc, 1, &d).await,
        vec![(c.height, c.txid)],
        "exactly one transaction commits the digest"
    );
    a.proof(&id, None)
        .await
        .unwrap()
        .verify(&d, &work(CONFIRMATIONS), Network::Regtest)
        .unwrap();
}
