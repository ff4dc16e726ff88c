//! Funds taken from the chain, not from a list, and recovery from the node's refusals, against
//! a real btcd regtest node: a spent or immature output is never taken, a stale output left in
//! the state (what the anchoring service's restart used to add) is dropped before signing, an
//! anchor whose input is gone is abandoned and signed again instead of being resent forever, a
//! fee below the node's minimum is refused once and replaced, and payments to the anchorer's
//! address are found without being listed.

#![allow(clippy::unwrap_used)] // A test fails by panicking; a panic names the failed step.

mod common;

use common::Harness;
use ipsat_anchor::bitcoin::hashes::Hash as _;
use ipsat_anchor::bitcoin::{Amount, OutPoint, TxOut, Txid};
use ipsat_anchor::state::{AnchorState, BlockRef, InFlight, TxVersion};
use ipsat_anchor::tx::{build_anchor_tx, build_payment_tx, Utxo};
use ipsat_anchor::{anchor_digest, AnchorError, AnchorStatus, RefusalCause, ScriptKind};

fn digest(n: u64) -> [u8; 32] {
    anchor_digest(33, 2_000 + n, [n as u8; 32], [0xc3; 32])
}

/// Anchors `d` and mines until it is confirmed, committed once; returns its txid.
async fn anchor_and_confirm(h: &Harness, a: &mut ipsat_anchor::Anchorer, d: [u8; 32]) -> Txid {
    a.anchor(d).await.unwrap();
    h.confirm(a).await.txid
}

#[tokio::test]
async fn only_unspent_mature_outputs_are_taken() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let mut a = h.open_funded(1).await;
    let first = h.coinbase(1).await;
    anchor_and_confirm(&h, &mut a, digest(1)).await;

    // The restart that broke anchoring: the configured coinbase offered again, long spent.
    drop(a);
    let mut a = h.open().await;
    let before = a.state().clone();
    assert!(matches!(
        a.fund(first).await,
        Err(AnchorError::SpentOrUnknown(o)) if o == first
    ));
    // An output that never existed, and a coinbase only one block deep.
    let nowhere = OutPoint::new(Txid::from_byte_array([0x42; 32]), 0);
    assert!(matches!(
        a.fund(nowhere).await,
        Err(AnchorError::SpentOrUnknown(_))
    ));
    let tip = h.node.rpc().get_block_count().await.unwrap();
    let young = h.coinbase(tip).await;
    match a.fund(young).await {
        Err(AnchorError::Immature {
            outpoint,
            confirmations,
        }) => assert_eq!((outpoint, confirmations), (young, 1)),
        other => panic!("expected Immature, got {other:?}"),
    }
    assert_eq!(a.state(), &before, "a refused output changes nothing");

    // The next anchor spends the change alone, and the node takes it.
    let d = digest(2);
    a.anchor(d).await.unwrap();
    let fl = a.state().in_flight.clone().unwrap();
    assert_eq!(fl.spends, before.utxos);
    assert_eq!(h.node.mempool().await, vec![fl.versions[0].txid]);
}

#[tokio::test]
async fn a_stale_output_in_the_state_is_dropped_before_signing() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let mut a = h.open_funded(1).await;
    let first = h.coinbase(1).await;
    anchor_and_confirm(&h, &mut a, digest(3)).await;
    let change = a.state().utxos.clone();

    // A state file that still lists the spent coinbase beside the change.
    drop(a);
    let mut stale = AnchorState::load(&h.state_path()).unwrap().unwrap();
    stale.utxos.push(Utxo {
        outpoint: first,
        value_sat: 50 * 100_000_000,
        script_pubkey: h.key().script_pubkey(),
    });
    stale.save(&h.state_path()).unwrap();

    let mut a = h.open().await;
    let d = digest(4);
    a.anchor(d).await.unwrap();
    let fl = a.state().in_flight.clone().unwrap();
    assert_eq!(fl.spends, change, "the spent output was not signed");
    assert!(a.state().utxos.is_empty());
    assert_eq!(h.confirm(&mut a).await.id.0, d);
}

#[tokio::test]
async fn an_anchor_spending_a_vanished_input_is_abandoned_and_signed_again() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let rpc = h.node.rpc();
    let mut a = h.open_funded(1).await;
    let first = h.coinbase(1).await;
    anchor_and_confirm(&h, &mut a, digest(5)).await;
    let change = a.state().utxos[0].clone();
    drop(a);

    // What the defect left behind: an anchor in flight that spends the change and the
    // long-spent coinbase, which the node refuses as an orphan every time.
    let spent = Utxo {
        outpoint: first,
        value_sat: 50 * 100_000_000,
        script_pubkey: h.key().script_pubkey(),
    };
    let d = digest(6);
    let spends = vec![change.clone(), spent];
    let signed = build_anchor_tx(&h.key(), &spends, &d, 2).unwrap();
    let tip = rpc.get_block_count().await.unwrap();
    let mut state = AnchorState::load(&h.state_path()).unwrap().unwrap();
    state.utxos.clear();
    state.in_flight = Some(InFlight {
        id: ipsat_anchor::AnchorId(d),
        spends,
        versions: vec![TxVersion::new(
            &signed.tx,
            signed.fee.to_sat(),
            2,
            signed.vsize,
        )],
        next_scan_height: tip + 1,
        last_scanned: Some(BlockRef {
            height: tip,
            hash: rpc.get_block_hash(tip).await.unwrap(),
        }),
        included: None,
        last_broadcast_error: None,
        conflict: None,
    });
    state.save(&h.state_path()).unwrap();

    // Reopened, it hands the saved anchor to the node once, sees the refusal, finds the input
    // gone and abandons the anchor.
    let mut a = h.open().await;
    assert!(a.state().in_flight.is_none(), "{:?}", a.state().in_flight);
    let abandoned = a.state().abandoned.last().unwrap();
    assert_eq!(abandoned.id.0, d);
    assert_eq!(abandoned.missing_inputs, vec![first]);
    assert_eq!(a.poll().await.unwrap(), AnchorStatus::Idle);
    assert_eq!(
        a.state().utxos,
        vec![change.clone()],
        "the live input is back"
    );
    assert_eq!(a.refusals().get(&RefusalCause::InputsGone), Some(&1));

    // Signed again from what is left, accepted and confirmed: exactly one commitment.
    a.anchor(d).await.unwrap();
    let fl = a.state().in_flight.clone().unwrap();
    assert_eq!(fl.spends, vec![change]);
    assert_eq!(h.confirm(&mut a).await.id.0, d);
    assert_eq!(a.state().abandoned.len(), 1);
}

#[tokio::test]
async fn a_fee_below_the_minimum_is_refused_once_and_replaced() {
    // btcd relays nothing below 5 sat/vB; the anchorer starts at 2.
    let h = Harness::with_btcd_args(
        ScriptKind::P2wpkh,
        &["--minrelaytxfee=0.00005", "--limitfreerelay=0"],
    )
    .await;
    let mut a = h.open_funded(1).await;
    let d = digest(7);
    a.anchor(d).await.unwrap();
    let first = a.state().in_flight.clone().unwrap().versions[0].clone();
    assert!(h.node.mempool().await.is_empty());
    let refused = |status: AnchorStatus| match status {
        AnchorStatus::Refused {
            txid,
            cause,
            fee_rate_sat_vb,
            ..
        } => (txid, cause, fee_rate_sat_vb),
        s => panic!("expected Refused, got {s:?}"),
    };
    assert_eq!(
        refused(a.poll().await.unwrap()),
        (first.txid, RefusalCause::FeeTooLow, 2)
    );
    // Polled again with nothing changed: the same transaction is not sent again.
    let attempts = a.state().in_flight.clone().unwrap().versions[0].broadcast_attempts;
    assert_eq!(
        refused(a.poll().await.unwrap()),
        (first.txid, RefusalCause::FeeTooLow, 2)
    );
    assert_eq!(
        a.state().in_flight.clone().unwrap().versions[0].broadcast_attempts,
        attempts
    );
    assert_eq!(a.refusals().get(&RefusalCause::FeeTooLow), Some(&1));

    let replacement = a.sign_replacement(8).await.unwrap();
    match a.poll().await.unwrap() {
        AnchorStatus::Pending { txid, .. } => assert_eq!(txid, replacement),
        s => panic!("expected Pending, got {s:?}"),
    }
    assert_eq!(h.node.mempool().await, vec![replacement]);
    let c = h.confirm(&mut a).await;
    assert_eq!((c.id.0, c.txid), (d, replacement));
}

#[tokio::test]
async fn a_payment_to_the_address_is_found_and_spent() {
    let h = Harness::new(ScriptKind::P2wpkh).await;
    let rpc = h.node.rpc();
    let mut a = h.open().await;
    assert_eq!(a.poll().await.unwrap(), AnchorStatus::Idle);
    assert!(matches!(
        a.anchor(digest(8)).await,
        Err(AnchorError::NoFunds)
    ));

    // Someone pays the anchorer's address from a coinbase of their own (here the same key,
    // which the anchorer does not know it holds): the payment is found once it is mined.
    let coinbase = Utxo {
        outpoint: h.coinbase(2).await,
        value_sat: 50 * 100_000_000,
        script_pubkey: h.key().script_pubkey(),
    };
    let payment = TxOut {
        value: Amount::from_sat(1_000_000),
        script_pubkey: h.key().script_pubkey(),
    };
    let paid = build_payment_tx(&h.key(), &[coinbase], payment, 2).unwrap();
    let txid = rpc.send_raw_transaction(&paid.tx).await.unwrap();
    assert_eq!(a.poll().await.unwrap(), AnchorStatus::Idle);
    assert!(
        a.state().utxos.is_empty(),
        "nothing held before it is mined"
    );
    h.node.mine(1).await;
    a.poll().await.unwrap();
    let held: Vec<OutPoint> = a.state().utxos.iter().map(|u| u.outpoint).collect();
    assert_eq!(
        held,
        vec![OutPoint::new(txid, 0), OutPoint::new(txid, 1)],
        "both outputs pay the anchorer's script; the mined coinbase is not taken"
    );
    // Found once only, across a restart.
    drop(a);
    let mut a = h.open().await;
    h.node.mine(1).await;
    a.poll().await.unwrap();
    assert_eq!(a.state().utxos.len(), 2);

    anchor_and_confirm(&h, &mut a, digest(9)).await;
    // The anchor's own change is not a payment.
    h.node.mine(1).await;
    a.poll().await.unwrap();
    assert_eq!(a.state().utxos.len(), 1);
}
