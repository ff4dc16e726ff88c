"""A dApp client of an IPsatoshi subnet, in Python, from the modules generated from proto/.

It reads the node's status and the sender's account, signs a transfer exactly as `ipsat tx`
does, broadcasts it in COMMIT mode and checks the recipient's balance afterwards:

    bash examples/python/run.sh --node 127.0.0.1:9090 \\
        --key-file ~/.ipsat-devnet/keys/faucet.json --to 0x... --amount 1000 [--output json]

Signing (docs/dapps.md): the body is the protobuf encoding of a TxBody; the signature is the
65-byte `r || s || recovery id` (low s) over
`keccak256("ipsat/tx/v1" || u32be(len(subnet_id)) || subnet_id || body)`; the transaction is
the protobuf encoding of `Tx{body, signature}`.
"""

import argparse
import json
import os
import secrets
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from coincurve import PrivateKey  # noqa: E402
from Crypto.Hash import keccak  # noqa: E402

from ipsat.v1 import api_pb2, api_pb2_grpc, types_pb2  # noqa: E402

SIGNATURE_DOMAIN = b"ipsat/tx/v1"
# The fee's own digits change the encoded size; 40 bytes covers any amount (as the CLI does).
FEE_DIGITS_ALLOWANCE = 40


class Failure(Exception):
    """Something the user must hear about; the client exits non-zero with it."""


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def load_key(path: str) -> PrivateKey:
    """The secret of an ipsat key file (`<home>/keys/<name>.json`), checked against its address."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        key = PrivateKey(bytes.fromhex(record["secret_key"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Failure(f"{path} is not an ipsat key file: {e}") from e
    if address_of(key) != record.get("address", "").lower():
        raise Failure(f"{path}: the secret key does not match the address it names")
    return key


def address_of(key: PrivateKey) -> str:
    public = key.public_key.format(compressed=False)[1:]
    return "0x" + keccak256(public)[12:].hex()


def parse_address(text: str) -> bytes:
    raw = text[2:] if text.startswith("0x") else text
    try:
        address = bytes.fromhex(raw)
    except ValueError as e:
        raise Failure(f"{text!r} is not a hex address") from e
    if len(address) != 20:
        raise Failure(f"{text!r} is not a 20-byte address")
    return address


def sign(key: PrivateKey, body: types_pb2.TxBody) -> bytes:
    encoded = body.SerializeToString(deterministic=True)
    subnet = body.subnet_id.encode()
    digest = keccak256(SIGNATURE_DOMAIN + struct.pack(">I", len(subnet)) + subnet + encoded)
    # libsecp256k1 signs with low s and returns r || s || recovery id (0 or 1).
    signature = key.sign_recoverable(digest, hasher=None)
    return types_pb2.Tx(body=encoded, signature=signature).SerializeToString(deterministic=True)


def transfer(channel, key: PrivateKey, to: bytes, amount: int) -> dict:
    query = api_pb2_grpc.QueryServiceStub(channel)
    txs = api_pb2_grpc.TxServiceStub(channel)
    status = query.GetStatus(api_pb2.GetStatusRequest())
    sender = bytes.fromhex(address_of(key)[2:])
    account = query.GetAccount(api_pb2.GetAccountRequest(address=sender)).account
    if amount > int(account.balance or "0"):
        raise Failure(f"{address_of(key)} holds {account.balance} atto-RBTC, not {amount}")
    body = types_pb2.TxBody(
        subnet_id=status.subnet_id,
        nonce=account.nonce,
        fee=status.fee_base,
        transfer=types_pb2.Transfer(to=to, amount=str(amount)),
    )
    # `from` is a Python keyword, hence setattr.
    setattr(body, "from", sender)
    size = len(sign(key, body)) + FEE_DIGITS_ALLOWANCE
    body.fee = str(int(status.fee_base) + int(status.fee_per_byte) * size)
    result = txs.BroadcastTx(
        api_pb2.BroadcastTxRequest(tx=sign(key, body), mode=api_pb2.BROADCAST_MODE_COMMIT)
    )
    if result.code != 0:
        raise Failure(f"the node refused the transfer: code {result.code}: {result.log}")
    recipient = query.GetAccount(api_pb2.GetAccountRequest(address=to)).account
    return {
        "subnet_id": status.subnet_id,
        "status_height": status.height,
        "from": address_of(key),
        "to": "0x" + to.hex(),
        "amount": str(amount),
        "fee": body.fee,
        "tx_hash": result.hash.hex(),
        "tx_height": result.height,
        "code": result.code,
        "recipient_balance": recipient.balance,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", default="127.0.0.1:9090", help="the node's gRPC host:port")
    parser.add_argument("--key-file", required=True, help="an ipsat key file that pays")
    parser.add_argument("--to", help="recipient address (default: a fresh random one)")
    parser.add_argument("--amount", type=int, default=1000, help="atto-RBTC to send")
    parser.add_argument("--output", choices=["human", "json"], default="human")
    args = parser.parse_args()
    try:
        if args.amount <= 0:
            raise Failure("--amount must be positive")
        key = load_key(args.key_file)
        to = parse_address(args.to) if args.to else secrets.token_bytes(20)
        with grpc.insecure_channel(args.node) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=10)
            except grpc.FutureTimeoutError as e:
                raise Failure(f"no node answers at {args.node}") from e
            report = transfer(channel, key, to, args.amount)
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"error: the node answered {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(report))
    else:
        print(
            f"{report['subnet_id']} at height {report['status_height']}: sent {report['amount']} "
            f"atto-RBTC from {report['from']} to {report['to']} (fee {report['fee']}), "
            f"committed at height {report['tx_height']}; the recipient now holds "
            f"{report['recipient_balance']} atto-RBTC"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
