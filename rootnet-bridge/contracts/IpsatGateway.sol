// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IpsatGateway: the RSK root of an IPsatoshi blocktree
/// @notice Registry of level-1 subnets (parameters, validators, RBTC collateral), top-down deposits
///         (`fund`), bottom-up checkpoints certified by an ECDSA quorum of the subnet's validators,
///         bottom-up releases proven against a checkpoint's `crossMsgsRoot`, the blocktree root over
///         every level-1 subnet's latest checkpoint, and a record of its Bitcoin anchors.
///
/// @dev Compiled with solc 0.8.37, optimizer 200 runs, `evmVersion: "shanghai"` (safe on every RSK
///      network); see `build.sh`. No external libraries.
///
///      Formulas shared with the Rust side (all `abi.encode` is standard Solidity ABI encoding):
///
///      - subnet id:          `keccak256(bytes(path))`, `path = "/r" ‖ decimal(block.chainid) ‖ "/" ‖ name`,
///                            name matching `[a-z0-9-]{1,32}` (e.g. `"/r33/alpha"` on RSK regtest).
///      - validator set hash: `keccak256(abi.encode(address[] signers, uint256[] powers))` with `signers`
///                            the validators' ECDSA signer addresses in strictly ascending order and
///                            `powers[i]` the collateral (wei) of `signers[i]`. The empty set hashes
///                            `keccak256(abi.encode(new address[](0), new uint256[](0)))`.
///      - checkpoint hash:    `keccak256(abi.encode(cp))` (the 10 static fields of `Checkpoint`, 320 bytes).
///      - checkpoint digest:  `keccak256(abi.encode(keccak256("ipsat/checkpoint/v1"), block.chainid,
///                            address(this), cp))`, signed raw (no EIP-191 prefix).
///      - release leaf:       `keccak256(bytes.concat(keccak256(abi.encode(r))))` for `Release r`.
///      - Merkle trees:       sorted pairs: `parent = keccak256(min(a, b) ‖ max(a, b))` (as OpenZeppelin's
///                            `MerkleProof`); a proof is the list of siblings from leaf to root.
///      - join authorisation: `keccak256(abi.encode(keccak256("ipsat/join/v1"), block.chainid,
///                            address(this), subnetId, owner))`, signed raw by the joining `ecdsaSigner`.
///      - kill digest:        as the checkpoint digest with `keccak256("ipsat/kill/v1")` as the tag.
///      - blocktree:          a fixed binary tree of depth `BLOCKTREE_DEPTH` (16) whose leaf `i` belongs to
///                            the subnet registered `i`-th (0-based), so positions never move. A leaf is
///                            `keccak256(0x00 ‖ subnetId ‖ latestCheckpointHash)` once the subnet has an
///                            accepted checkpoint and `bytes32(0)` before; an inner node is
///                            `keccak256(0x01 ‖ left ‖ right)`, except that two zero children give
///                            `bytes32(0)` (an empty subtree). The prefixes keep leaves and inner nodes
///                            apart. The root of the empty tree is `bytes32(0)`.
///
///      Validator-set life cycle: every `join`/`leaveSubnet` increments the subnet's `configurationNumber`
///      and records the hash of the resulting membership under that number. The subnet becomes active
///      when its membership first reaches `minValidators`; that membership is the first *confirmed*
///      set. A checkpoint is verified against the confirmed set; once accepted, the membership as of
///      `cp.configurationNumber` (whose hash must equal `cp.nextValidatorSetHash`) becomes the
///      confirmed set for the next checkpoint. Collateral of a validator that left is claimable once
///      a checkpoint with `configurationNumber >=` the leave's configuration number was accepted (or
///      at once if the subnet never became active, or it left before activation). Once active, a leave
///      may not take the membership below `minValidators`: a subnet ends only by `killSubnet`, a final
///      checkpoint its confirmed set signs under the kill tag, whose releases pay out what it says its
///      accounts hold and after which every validator's collateral is claimable. A subnet that never
///      became active holds no deposits (`fund` waits for activation) and its creator may `abandonSubnet`.
///      Registration costs `registrationDeposit`, paid back to the creator once the subnet has ended.
contract IpsatGateway {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice A bottom-up checkpoint of a level-1 subnet. All fields are static, so
    ///         `abi.encode(cp)` is the ten 32-byte words in this order.
    struct Checkpoint {
        bytes32 subnetId;
        uint64 height;
        bytes32 blockHash;
        bytes32 stateRoot;
        bytes32 historyRoot;
        bytes32 crossMsgsRoot;
        uint64 crossMsgsCount;
        bytes32 nextValidatorSetHash;
        uint64 configurationNumber;
        bytes32 previousCheckpointHash;
    }

    /// @notice A bottom-up release of RBTC, a leaf of a checkpoint's `crossMsgsRoot`.
    struct Release {
        address recipient;
        uint256 amount;
        uint64 nonce;
    }

    enum ValidatorStatus {
        None,
        Active,
        Leaving
    }

    /// @notice Everything known about one subnet (returned by `getSubnet`).
    struct SubnetInfo {
        string path;
        uint64 minValidators;
        uint256 minCollateral;
        uint64 checkpointPeriod;
        uint32 registrationIndex;
        bool active;
        bool ended;
        address creator;
        uint64 configurationNumber;
        uint64 validatorCount;
        uint64 confirmedConfigurationNumber;
        bytes32 confirmedValidatorSetHash;
        uint64 lastCheckpointHeight;
        bytes32 lastCheckpointHash;
        bytes32 lastCrossMsgsRoot;
        uint256 locked;
        uint256 collateral;
        uint64 nextFundNonce;
    }

    /// @notice One validator of one subnet, keyed by its owner (the account that joined).
    struct ValidatorInfo {
        ValidatorStatus status;
        address signer;
        uint256 power;
        uint64 joinConfigurationNumber;
        uint64 leaveConfigurationNumber;
        bytes32 cometbftKey;
        bytes blsPublicKey;
        bytes blsPop;
    }

    /// @notice The keys of one current member, as a level-1 subnet's genesis needs them.
    struct MemberKeys {
        address signer;
        uint256 power;
        bytes32 cometbftKey;
        bytes blsPublicKey;
        bytes blsPop;
    }

    /// @notice The latest anchor recorded by the anchorer: Bitcoin transaction `btcTxid`, confirmed
    ///         at `btcHeight`, commits `blocktreeRoot` as read at RSK height `rskHeight`
    ///         (the anchor digest covers that height and its block hash); `rskBlockNumber` is the
    ///         block that recorded it.
    struct Anchor {
        bytes32 blocktreeRoot;
        bytes32 btcTxid;
        uint64 btcHeight;
        uint64 rskHeight;
        uint64 rskBlockNumber;
    }

    // Storage layout of a subnet, packed so `submitCheckpoint` touches few slots.
    struct Subnet {
        // slot 0
        uint64 minValidators;
        uint64 checkpointPeriod;
        uint64 configurationNumber;
        uint32 registrationIndex;
        bool exists;
        bool active;
        bool ended; // killed or abandoned: no more joins, leaves, deposits or checkpoints
        // slot 1
        uint64 validatorCount;
        uint64 confirmedConfigurationNumber;
        uint64 lastHeight;
        // slot 2
        address creator; // zeroed once the registration deposit is paid back
        // slot 3..
        bytes32 confirmedValidatorSetHash;
        bytes32 lastCheckpointHash;
        uint256 minCollateral;
        uint256 locked;
        uint256 collateral;
        uint64 nextFundNonce;
    }

    /// @notice What `join` needs besides the subnet; a struct so `join` stays within the EVM's
    ///         stack.
    struct JoinRequest {
        /// The address whose secp256k1 signatures count for this validator in checkpoints;
        /// unique among the current members.
        address ecdsaSigner;
        /// `ecdsaSigner`'s 65-byte `r ‖ s ‖ v` signature (v 27/28, low s) of
        /// `joinDigest(subnetId, msg.sender)`: only the signer's owner can register it.
        bytes signerSignature;
        /// 48-byte compressed BLS12-381 G1 public key.
        bytes blsPublicKey;
        /// 96-byte compressed G2 proof of possession of `blsPublicKey`.
        bytes blsPop;
        /// The validator's CometBFT ed25519 consensus key, which the subnet's genesis and
        /// CometBFT validator set are built from.
        bytes32 cometbftKey;
    }

    struct Validator {
        address signer;
        uint96 power;
        uint64 joinConfigurationNumber;
        uint64 leaveConfigurationNumber;
        ValidatorStatus status;
        bytes32 cometbftKey;
        bytes blsPublicKey;
        bytes blsPop;
    }

    // ------------------------------------------------------------------------------------------
    // Constants and state
    // ------------------------------------------------------------------------------------------

    /// @notice Domain tag of checkpoint digests: `keccak256("ipsat/checkpoint/v1")`.
    bytes32 public constant CHECKPOINT_DOMAIN = keccak256("ipsat/checkpoint/v1");
    /// @notice Domain tag of the final checkpoint that ends a subnet: `keccak256("ipsat/kill/v1")`.
    bytes32 public constant KILL_DOMAIN = keccak256("ipsat/kill/v1");
    /// @notice Domain tag of a signer's join authorisation: `keccak256("ipsat/join/v1")`.
    bytes32 public constant JOIN_DOMAIN = keccak256("ipsat/join/v1");
    /// @notice Length of a compressed BLS12-381 G1 public key (min_pk scheme).
    uint256 public constant BLS_PUBLIC_KEY_LENGTH = 48;
    /// @notice Length of a compressed BLS12-381 G2 proof of possession.
    uint256 public constant BLS_POP_LENGTH = 96;
    /// @notice Length of one ECDSA signature `r ‖ s ‖ v`.
    uint256 public constant SIGNATURE_LENGTH = 65;

    /// @notice Largest `checkpointPeriod` accepted by `registerSubnet`.
    uint64 public constant MAX_CHECKPOINT_PERIOD = 2 ** 32;
    /// @notice Most validators a subnet may have: its certificates' signer bitmaps and every
    ///         checkpoint's verification cost stay bounded.
    uint64 public constant MAX_VALIDATORS = 100;
    /// @notice Depth of the blocktree; at most `2 ** BLOCKTREE_DEPTH` level-1 subnets.
    uint256 public constant BLOCKTREE_DEPTH = 16;
    /// @notice Most level-1 subnets this gateway registers (one blocktree leaf each).
    uint256 public constant MAX_SUBNETS = 2 ** BLOCKTREE_DEPTH;

    uint256 private constant SECP256K1_HALF_ORDER =
        0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 private constant ADDRESS_MASK = type(uint160).max;

    /// @notice The only account allowed to call `recordAnchor`; the admin may rotate it.
    address public anchorer;
    /// @notice Who deployed the gateway: the only account that may rotate the anchorer.
    address public immutable admin;
    /// @notice What `registerSubnet` costs, paid back to the creator once the subnet has ended:
    ///         registering is never free, so registrations cannot be spammed at no cost.
    uint256 public immutable registrationDeposit;

    bytes32[] private _subnetIds;
    mapping(bytes32 subnetId => Subnet) private _subnets;
    mapping(bytes32 subnetId => string) private _paths;
    // Membership as a linked list sorted by signer address. Node of a signer:
    // `uint160(next) | power << 160`; key address(0) is the sentinel head (power 0).
    mapping(bytes32 subnetId => mapping(address signer => uint256 node)) private _members;
    mapping(bytes32 subnetId => mapping(address owner => Validator)) private _validators;
    mapping(bytes32 subnetId => mapping(address signer => address owner)) private _owners;
    mapping(bytes32 subnetId => mapping(uint64 configurationNumber => bytes32 setHash)) private _setHashes;
    mapping(bytes32 subnetId => mapping(uint64 height => bytes32 crossMsgsRoot)) private _crossMsgsRoots;
    /// @dev Keyed by the release's nonce alone: a release that appears in two checkpoints pays once.
    mapping(bytes32 subnetId => mapping(uint64 nonce => bool)) private _released;

    // Blocktree nodes below the root, keyed `level << 32 | index` (level 0 = leaves); unset = empty.
    mapping(uint256 key => bytes32 node) private _blocktreeNodes;
    bytes32 private _blocktreeRoot;

    Anchor private _latestAnchor;

    uint256 private _reentrancyStatus = 1;

    // ------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------

    event SubnetRegistered(
        bytes32 indexed subnetId,
        string path,
        address creator,
        uint64 minValidators,
        uint256 minCollateral,
        uint64 checkpointPeriod
    );
    /// @notice A validator joined; `configurationNumber` is the subnet's new configuration number and
    ///         `validatorSetHash` the hash of the membership as of it.
    event ValidatorJoined(
        bytes32 indexed subnetId,
        address indexed owner,
        address indexed signer,
        uint256 power,
        bytes blsPublicKey,
        bytes blsPop,
        uint64 configurationNumber,
        bytes32 validatorSetHash
    );
    /// @notice A validator left; its collateral is claimable once a checkpoint with
    ///         `configurationNumber >=` this one is accepted.
    event ValidatorLeft(
        bytes32 indexed subnetId,
        address indexed owner,
        address indexed signer,
        uint256 power,
        uint64 configurationNumber,
        bytes32 validatorSetHash
    );
    /// @notice The subnet reached `minValidators`; this membership is the first confirmed set.
    event SubnetActivated(bytes32 indexed subnetId, uint64 configurationNumber, bytes32 validatorSetHash);
    /// @notice RBTC locked for `recipient` in the subnet; `nonce` counts deposits per subnet from 0.
    event Funded(bytes32 indexed subnetId, address indexed recipient, uint256 amount, uint64 nonce);
    event CheckpointAccepted(bytes32 indexed subnetId, uint64 height, bytes32 checkpointHash);
    /// @notice Emitted with `CheckpointAccepted` when the confirmed validator set changes.
    event ValidatorSetConfirmed(bytes32 indexed subnetId, uint64 configurationNumber, bytes32 validatorSetHash);
    event ReleaseExecuted(
        bytes32 indexed subnetId, uint64 indexed checkpointHeight, uint64 nonce, address recipient, uint256 amount
    );
    event CollateralClaimed(bytes32 indexed subnetId, address indexed owner, uint256 amount);
    event AnchorRecorded(bytes32 indexed blocktreeRoot, bytes32 indexed btcTxid, uint64 btcHeight, uint64 rskHeight);
    event AnchorerChanged(address indexed previous, address indexed next);
    /// @notice The subnet ended with the checkpoint at `height` (a kill), or before it ever had
    ///         one (`height` 0: abandoned before activation).
    event SubnetEnded(bytes32 indexed subnetId, uint64 height);
    event RegistrationDepositRefunded(bytes32 indexed subnetId, address indexed creator, uint256 amount);

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    error UnknownSubnet(bytes32 subnetId);
    error InvalidName();
    error SubnetNameTaken(string path);
    error InvalidSubnetParams();
    error CollateralTooLow(uint256 minimum, uint256 got);
    error CollateralTooHigh();
    error InvalidSigner();
    error InvalidCometbftKey();
    error InvalidSignerSignature();
    error WrongRegistrationDeposit(uint256 expected, uint256 got);
    error TooManySubnets();
    error BelowMinValidators(uint64 minValidators);
    error SubnetHasEnded(bytes32 subnetId);
    error SubnetNotEnded(bytes32 subnetId);
    error SubnetAlreadyActive(bytes32 subnetId);
    error NotCreator(address caller);
    error InvalidBlsKeyLength(uint256 got);
    error InvalidBlsPopLength(uint256 got);
    error AlreadyValidator(address owner);
    error SignerTaken(address signer);
    error LeavePending(address owner);
    error NotValidator(address owner);
    error NotLeaving(address owner);
    error CollateralLocked(uint64 leaveConfigurationNumber, uint64 confirmedConfigurationNumber);
    error ZeroValue();
    error InvalidRecipient();
    error SubnetNotActive(bytes32 subnetId);
    error CheckpointSubnetMismatch(bytes32 expected, bytes32 got);
    error WrongHeight(uint64 expected, uint64 got);
    error WrongPreviousCheckpoint(bytes32 expected, bytes32 got);
    error InvalidConfigurationNumber(uint64 min, uint64 max, uint64 got);
    error NextValidatorSetMismatch(bytes32 expected, bytes32 got);
    error ValidatorSetMismatch();
    error InvalidSignatureLength(uint256 length);
    error InvalidSignature(uint256 index);
    error SignersNotAscending(uint256 index);
    error SignerNotInSet(address signer);
    error QuorumNotReached(uint256 signed, uint256 total);
    error CheckpointNotFound(bytes32 subnetId, uint64 height);
    error ReleaseAlreadyExecuted(bytes32 subnetId, uint64 checkpointHeight, uint64 nonce);
    error InvalidMerkleProof();
    error InsufficientLocked(uint256 locked, uint256 requested);
    error NotAnchorer(address caller);
    error NotAdmin(address caller);
    error InvalidAnchorer();
    error AnchorHeightDecreased(uint64 latest, uint64 got);
    error InvalidAnchorRskHeight(uint64 latest, uint64 got);
    error SubnetFull(bytes32 subnetId);
    error TransferFailed(address to, uint256 amount);
    error Reentrancy();

    // ------------------------------------------------------------------------------------------
    // Construction and guards
    // ------------------------------------------------------------------------------------------

    /// @param anchorer_ The account allowed to `recordAnchor` (the Bitcoin anchorer's RSK key).
    /// @param registrationDeposit_ What registering a subnet costs until it ends (positive).
    constructor(address anchorer_, uint256 registrationDeposit_) {
        if (anchorer_ == address(0)) revert InvalidAnchorer();
        if (registrationDeposit_ == 0) revert WrongRegistrationDeposit(1, 0);
        admin = msg.sender;
        anchorer = anchorer_;
        registrationDeposit = registrationDeposit_;
    }

    modifier nonReentrant() {
        if (_reentrancyStatus != 1) revert Reentrancy();
        _reentrancyStatus = 2;
        _;
        _reentrancyStatus = 1;
    }

    function _subnet(bytes32 subnetId) private view returns (Subnet storage s) {
        s = _subnets[subnetId];
        if (!s.exists) revert UnknownSubnet(subnetId);
    }

    /// @dev A registered subnet that has not ended.
    function _liveSubnet(bytes32 subnetId) private view returns (Subnet storage s) {
        s = _subnet(subnetId);
        if (s.ended) revert SubnetHasEnded(subnetId);
    }

    // ------------------------------------------------------------------------------------------
    // Registry
    // ------------------------------------------------------------------------------------------

    /// @notice Registers a level-1 subnet `"/r<chainid>/<name>"`, for exactly `registrationDeposit`
    ///         (paid back to the caller by `claimRegistrationDeposit` once the subnet has ended).
    /// @param name `[a-z0-9-]{1,32}`, unique.
    /// @param minValidators Members needed before the subnet accepts checkpoints (>= 1).
    /// @param minCollateral Minimum collateral (wei) per validator; a validator's power is its collateral.
    /// @param checkpointPeriod Blocks between checkpoints, 1..2^32 (so heights never overflow uint64);
    ///        checkpoint heights are its multiples.
    /// @return subnetId `keccak256(bytes(path))`.
    function registerSubnet(string calldata name, uint64 minValidators, uint256 minCollateral, uint64 checkpointPeriod)
        external
        payable
        returns (bytes32 subnetId)
    {
        if (msg.value != registrationDeposit) revert WrongRegistrationDeposit(registrationDeposit, msg.value);
        if (_subnetIds.length >= MAX_SUBNETS) revert TooManySubnets();
        _checkName(name);
        if (
            minValidators == 0 || minValidators > MAX_VALIDATORS || minCollateral == 0 || checkpointPeriod == 0
                || checkpointPeriod > MAX_CHECKPOINT_PERIOD
        ) {
            revert InvalidSubnetParams();
        }
        string memory path = string.concat("/r", _decimal(block.chainid), "/", name);
        subnetId = keccak256(bytes(path));
        Subnet storage s = _subnets[subnetId];
        if (s.exists) revert SubnetNameTaken(path);
        s.exists = true;
        s.minValidators = minValidators;
        s.checkpointPeriod = checkpointPeriod;
        s.minCollateral = minCollateral;
        s.creator = msg.sender;
        s.registrationIndex = uint32(_subnetIds.length);
        _subnetIds.push(subnetId);
        _paths[subnetId] = path;
        emit SubnetRegistered(subnetId, path, msg.sender, minValidators, minCollateral, checkpointPeriod);
    }

    // ------------------------------------------------------------------------------------------
    // Validators
    // ------------------------------------------------------------------------------------------

    /// @notice Joins `subnetId` as a validator with collateral `msg.value` (its power).
    /// @dev RSK has no BLS12-381 precompile, so the BLS key and its proof of possession are NOT
    ///      verified here: only their lengths are checked. They are stored and emitted for the
    ///      subnet's validators, which verify them natively before using the key. The signer's
    ///      signature of `joinDigest(subnetId, msg.sender)` is verified: nobody can register
    ///      someone else's signer (and so front-run its owner's join). Gas grows linearly with the
    ///      membership size (the new set hash is computed over all members).
    function join(bytes32 subnetId, JoinRequest calldata request) external payable {
        Subnet storage s = _liveSubnet(subnetId);
        if (msg.value == 0 || msg.value < s.minCollateral) revert CollateralTooLow(s.minCollateral, msg.value);
        if (msg.value > type(uint96).max) revert CollateralTooHigh();
        address ecdsaSigner = request.ecdsaSigner;
        if (ecdsaSigner == address(0)) revert InvalidSigner();
        if (request.cometbftKey == bytes32(0)) revert InvalidCometbftKey();
        if (request.blsPublicKey.length != BLS_PUBLIC_KEY_LENGTH) {
            revert InvalidBlsKeyLength(request.blsPublicKey.length);
        }
        if (request.blsPop.length != BLS_POP_LENGTH) revert InvalidBlsPopLength(request.blsPop.length);
        if (_recover(joinDigest(subnetId, msg.sender), request.signerSignature) != ecdsaSigner) {
            revert InvalidSignerSignature();
        }
        Validator storage v = _validators[subnetId][msg.sender];
        if (v.status == ValidatorStatus.Active) revert AlreadyValidator(msg.sender);
        if (v.status == ValidatorStatus.Leaving) revert LeavePending(msg.sender);
        if (_members[subnetId][ecdsaSigner] != 0) revert SignerTaken(ecdsaSigner);
        if (s.validatorCount >= MAX_VALIDATORS) revert SubnetFull(subnetId);

        uint96 power = uint96(msg.value);
        _insertMember(subnetId, ecdsaSigner, power);
        uint64 config = s.configurationNumber + 1;
        uint64 count = s.validatorCount + 1;
        s.configurationNumber = config;
        s.validatorCount = count;
        s.collateral += msg.value;
        bytes32 setHash = _membershipHash(subnetId, count);
        _setHashes[subnetId][config] = setHash;

        v.signer = ecdsaSigner;
        v.power = power;
        v.joinConfigurationNumber = config;
        v.leaveConfigurationNumber = 0;
        v.status = ValidatorStatus.Active;
        v.cometbftKey = request.cometbftKey;
        v.blsPublicKey = request.blsPublicKey;
        v.blsPop = request.blsPop;
        _owners[subnetId][ecdsaSigner] = msg.sender;

        emit ValidatorJoined(
            subnetId, msg.sender, ecdsaSigner, msg.value, request.blsPublicKey, request.blsPop, config, setHash
        );

        if (!s.active && count >= s.minValidators) {
            s.active = true;
            s.confirmedConfigurationNumber = config;
            s.confirmedValidatorSetHash = setHash;
            emit SubnetActivated(subnetId, config, setHash);
        }
    }

    /// @notice What a validator's `ecdsaSigner` signs (raw, no EIP-191 prefix) to let `owner` join
    ///         `subnetId` with it: `keccak256(abi.encode(JOIN_DOMAIN, block.chainid, address(this),
    ///         subnetId, owner))`.
    function joinDigest(bytes32 subnetId, address owner) public view returns (bytes32) {
        return keccak256(abi.encode(JOIN_DOMAIN, block.chainid, address(this), subnetId, owner));
    }

    /// @notice Leaves `subnetId`: the caller's validator leaves the membership at once (a new
    ///         configuration number); its collateral becomes claimable with `claimCollateral` once a
    ///         checkpoint with `configurationNumber >=` that number is accepted. A validator that
    ///         left keeps signing for the confirmed set it belongs to until then.
    ///         Once the subnet is active, a leave that would take the membership below
    ///         `minValidators` is refused: the subnet must be ended with `killSubnet` instead.
    /// @dev Named `leaveSubnet`, not `leave`: solc >= 0.8.3x warns that `leave` becomes a keyword.
    function leaveSubnet(bytes32 subnetId) external {
        Subnet storage s = _liveSubnet(subnetId);
        Validator storage v = _validators[subnetId][msg.sender];
        if (v.status != ValidatorStatus.Active) revert NotValidator(msg.sender);
        uint64 count = s.validatorCount - 1;
        if (s.active && count < s.minValidators) revert BelowMinValidators(s.minValidators);
        address signer = v.signer;
        _removeMember(subnetId, signer);
        uint64 config = s.configurationNumber + 1;
        s.configurationNumber = config;
        s.validatorCount = count;
        bytes32 setHash = _membershipHash(subnetId, count);
        _setHashes[subnetId][config] = setHash;
        v.status = ValidatorStatus.Leaving;
        v.leaveConfigurationNumber = config;
        emit ValidatorLeft(subnetId, msg.sender, signer, v.power, config, setHash);
    }

    /// @notice Pays the caller back the collateral of its validator that left `subnetId`, or of
    ///         any of its validators once the subnet has ended.
    function claimCollateral(bytes32 subnetId) external nonReentrant {
        Subnet storage s = _subnet(subnetId);
        Validator storage v = _validators[subnetId][msg.sender];
        if (s.ended) {
            if (v.status == ValidatorStatus.None) revert NotValidator(msg.sender);
        } else {
            if (v.status != ValidatorStatus.Leaving) revert NotLeaving(msg.sender);
            uint64 leaveConfig = v.leaveConfigurationNumber;
            if (s.active && s.confirmedConfigurationNumber < leaveConfig) {
                revert CollateralLocked(leaveConfig, s.confirmedConfigurationNumber);
            }
        }
        uint256 amount = v.power;
        s.collateral -= amount;
        delete _validators[subnetId][msg.sender];
        emit CollateralClaimed(subnetId, msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------------------------------
    // Top-down deposits
    // ------------------------------------------------------------------------------------------

    /// @notice Locks `msg.value` RBTC for `recipient` in `subnetId`; the subnet mints it when it
    ///         imports the `Funded` event (ordered by `nonce`, 0, 1, 2, ... per subnet). Only while
    ///         the subnet is active: before, no validator set exists that could ever release it.
    function fund(bytes32 subnetId, address recipient) external payable {
        Subnet storage s = _liveSubnet(subnetId);
        if (!s.active) revert SubnetNotActive(subnetId);
        if (msg.value == 0) revert ZeroValue();
        if (recipient == address(0)) revert InvalidRecipient();
        uint64 nonce = s.nextFundNonce;
        s.nextFundNonce = nonce + 1;
        s.locked += msg.value;
        emit Funded(subnetId, recipient, msg.value, nonce);
    }

    // ------------------------------------------------------------------------------------------
    // Checkpoints
    // ------------------------------------------------------------------------------------------

    /// @notice The digest validators sign for `cp` (raw secp256k1 ECDSA, no EIP-191 prefix):
    ///         `keccak256(abi.encode(CHECKPOINT_DOMAIN, block.chainid, address(this), cp))`.
    function checkpointDigest(Checkpoint calldata cp) public view returns (bytes32) {
        return keccak256(abi.encode(CHECKPOINT_DOMAIN, block.chainid, address(this), cp));
    }

    /// @notice `keccak256(abi.encode(cp))`, the value chained by `previousCheckpointHash`.
    function checkpointHash(Checkpoint calldata cp) public pure returns (bytes32) {
        return keccak256(abi.encode(cp));
    }

    /// @notice Accepts the next checkpoint of `subnetId`, certified by the confirmed validator set.
    /// @dev Anyone may relay. `validators`/`powers` are the confirmed set (its hash must equal the
    ///      stored confirmed set hash); passing it in calldata keeps verification at a few thousand
    ///      gas per signer instead of a storage read per member. Measured (anvil, shanghai): 100
    ///      validators with a 59-signer quorum ~412k gas, with all 100 signing ~596k (ecrecover and
    ///      calldata alone are ~4.1k per signature), so relay just enough signatures for the quorum
    ///      (highest power first) to stay under 500k.
    /// @param cp The checkpoint; `cp.subnetId` must equal `subnetId`, `cp.height` the last accepted
    ///        height plus the period (the period for the first), `cp.previousCheckpointHash` the last
    ///        accepted checkpoint hash (zero for the first), `cp.configurationNumber` in
    ///        [confirmed, current] and `cp.nextValidatorSetHash` the membership hash at that number.
    /// @param validators Signer addresses of the confirmed set, strictly ascending.
    /// @param powers Their powers, in the same order.
    /// @param signatures Concatenated 65-byte `r ‖ s ‖ v` signatures (v 27/28, low s) over
    ///        `checkpointDigest(cp)`, ordered by strictly ascending signer address, whose power must
    ///        be more than 2/3 of the set's total (`3 * signed > 2 * total`).
    function submitCheckpoint(
        bytes32 subnetId,
        Checkpoint calldata cp,
        address[] calldata validators,
        uint256[] calldata powers,
        bytes calldata signatures
    ) external {
        _certifiedAccept(subnetId, cp, checkpointDigest(cp), validators, powers, signatures);
    }

    /// @notice The digest validators sign to end their subnet with `cp` as its final checkpoint:
    ///         `keccak256(abi.encode(KILL_DOMAIN, block.chainid, address(this), cp))`.
    function killDigest(Checkpoint calldata cp) public view returns (bytes32) {
        return keccak256(abi.encode(KILL_DOMAIN, block.chainid, address(this), cp));
    }

    /// @notice Ends `subnetId` with `cp`, its final checkpoint, certified by the confirmed set over
    ///         `killDigest(cp)` (same arguments and checks as `submitCheckpoint`). The releases in
    ///         `cp.crossMsgsRoot` pay out what the subnet's accounts hold; afterwards no join, leave,
    ///         deposit or checkpoint is accepted, every validator can claim its collateral and the
    ///         creator its registration deposit.
    function killSubnet(
        bytes32 subnetId,
        Checkpoint calldata cp,
        address[] calldata validators,
        uint256[] calldata powers,
        bytes calldata signatures
    ) external {
        Subnet storage s = _certifiedAccept(subnetId, cp, killDigest(cp), validators, powers, signatures);
        s.ended = true;
        emit SubnetEnded(subnetId, cp.height);
    }

    /// @notice Ends a subnet that never became active (it holds no deposits); only its creator.
    function abandonSubnet(bytes32 subnetId) external {
        Subnet storage s = _liveSubnet(subnetId);
        if (msg.sender != s.creator) revert NotCreator(msg.sender);
        if (s.active) revert SubnetAlreadyActive(subnetId);
        s.ended = true;
        emit SubnetEnded(subnetId, 0);
    }

    /// @notice Pays the creator of an ended subnet back its registration deposit, once.
    function claimRegistrationDeposit(bytes32 subnetId) external nonReentrant {
        Subnet storage s = _subnet(subnetId);
        if (!s.ended) revert SubnetNotEnded(subnetId);
        if (msg.sender != s.creator) revert NotCreator(msg.sender);
        s.creator = address(0);
        emit RegistrationDepositRefunded(subnetId, msg.sender, registrationDeposit);
        _send(msg.sender, registrationDeposit);
    }

    /// @dev Checks `cp` as the next checkpoint of a live subnet, certified over `digest` by its
    ///      confirmed set, and accepts it.
    function _certifiedAccept(
        bytes32 subnetId,
        Checkpoint calldata cp,
        bytes32 digest,
        address[] calldata validators,
        uint256[] calldata powers,
        bytes calldata signatures
    ) private returns (Subnet storage s) {
        if (cp.subnetId != subnetId) revert CheckpointSubnetMismatch(subnetId, cp.subnetId);
        s = _liveSubnet(subnetId);
        (uint64 height, bytes32 nextHash) = _checkSequence(s, subnetId, cp);
        if (validators.length != powers.length || _calldataSetHash(validators, powers) != s.confirmedValidatorSetHash) {
            revert ValidatorSetMismatch();
        }
        _verifyQuorum(digest, validators, powers, signatures);
        _accept(s, subnetId, cp, height, nextHash);
    }

    /// @dev Effects of an accepted checkpoint.
    function _accept(Subnet storage s, bytes32 subnetId, Checkpoint calldata cp, uint64 height, bytes32 nextHash)
        private
    {
        bytes32 cpHash = keccak256(abi.encode(cp));
        s.lastHeight = height;
        s.lastCheckpointHash = cpHash;
        uint64 nextConfig = cp.configurationNumber;
        if (nextConfig != s.confirmedConfigurationNumber) {
            s.confirmedConfigurationNumber = nextConfig;
            s.confirmedValidatorSetHash = nextHash;
            emit ValidatorSetConfirmed(subnetId, nextConfig, nextHash);
        }
        _crossMsgsRoots[subnetId][height] = cp.crossMsgsRoot;
        _updateBlocktree(s.registrationIndex, subnetId, cpHash);
        emit CheckpointAccepted(subnetId, height, cpHash);
    }

    /// @dev Checks activity, height, chaining and the next validator set of `cp`; returns the
    ///      height and the hash of the set `cp` confirms.
    function _checkSequence(Subnet storage s, bytes32 subnetId, Checkpoint calldata cp)
        private
        view
        returns (uint64 height, bytes32 nextHash)
    {
        if (!s.active) revert SubnetNotActive(subnetId);
        height = s.lastHeight + s.checkpointPeriod;
        if (cp.height != height) revert WrongHeight(height, cp.height);
        bytes32 previous = s.lastCheckpointHash;
        if (cp.previousCheckpointHash != previous) revert WrongPreviousCheckpoint(previous, cp.previousCheckpointHash);
        uint64 confirmedConfig = s.confirmedConfigurationNumber;
        uint64 currentConfig = s.configurationNumber;
        uint64 nextConfig = cp.configurationNumber;
        if (nextConfig < confirmedConfig || nextConfig > currentConfig) {
            revert InvalidConfigurationNumber(confirmedConfig, currentConfig, nextConfig);
        }
        nextHash = nextConfig == confirmedConfig ? s.confirmedValidatorSetHash : _setHashes[subnetId][nextConfig];
        if (cp.nextValidatorSetHash != nextHash) revert NextValidatorSetMismatch(nextHash, cp.nextValidatorSetHash);
    }

    /// @dev `keccak256(abi.encode(validators, powers))` computed straight from calldata (the two
    ///      arrays are copied, not re-encoded element by element). Words with dirty high bits hash
    ///      differently from the clean encoding the contract stored, so they can only fail the check.
    function _calldataSetHash(address[] calldata validators, uint256[] calldata powers)
        private
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let n := validators.length
            let size := shl(5, n)
            let ptr := mload(0x40)
            mstore(ptr, 0x40)
            mstore(add(ptr, 0x20), add(0x60, size))
            mstore(add(ptr, 0x40), n)
            calldatacopy(add(ptr, 0x60), validators.offset, size)
            mstore(add(add(ptr, 0x60), size), n)
            calldatacopy(add(add(ptr, 0x80), size), powers.offset, size)
            h := keccak256(ptr, add(0x80, shl(1, size)))
        }
    }

    /// @dev Checks the quorum of `signatures` over `digest` against the confirmed set
    ///      (`validators`/`powers`, already checked against the stored hash, so the addresses are
    ///      ascending and the powers are uint96 values that cannot overflow when summed).
    function _verifyQuorum(
        bytes32 digest,
        address[] calldata validators,
        uint256[] calldata powers,
        bytes calldata signatures
    ) private view {
        if (signatures.length % SIGNATURE_LENGTH != 0) revert InvalidSignatureLength(signatures.length);
        uint256 total = _sumPowers(powers);
        uint256 signed;
        uint256 failure; // 0 ok, 1 invalid signature, 2 signers not ascending, 3 signer not in set
        uint256 detail; // the signature index (1, 2) or the signer (3)
        // Hot loop in assembly: a few hundred gas per signer on top of ecrecover's 3000 instead of
        // about 1000 more (checked calldata access and the ecrecover builtin's memory handling).
        assembly ("memory-safe") {
            mstore(mload(0x40), digest) // ecrecover input at free memory (not kept): digest, v, r, s
            let sigs := signatures.offset
            let sigsEnd := add(sigs, signatures.length)
            let cursor := validators.offset // walks the ascending validator list
            let validatorsEnd := add(cursor, shl(5, validators.length))
            let toPower := sub(powers.offset, cursor) // validators[i] + toPower = powers[i]
            let previous := 0
            for { let p := sigs } lt(p, sigsEnd) { p := add(p, 65) } {
                let signer := 0
                {
                    let ptr := mload(0x40)
                    let s := calldataload(add(p, 0x20))
                    let v := byte(0, calldataload(add(p, 0x40)))
                    // low s (EIP-2) and v in {27, 28}; ecrecover returns no data on failure
                    if iszero(or(gt(s, SECP256K1_HALF_ORDER), iszero(or(eq(v, 27), eq(v, 28))))) {
                        mstore(add(ptr, 0x20), v)
                        mstore(add(ptr, 0x40), calldataload(p))
                        mstore(add(ptr, 0x60), s)
                        mstore(0x00, 0)
                        if staticcall(gas(), 1, ptr, 0x80, 0x00, 0x20) { signer := mload(0x00) }
                    }
                }
                if iszero(signer) {
                    failure := 1
                    detail := div(sub(p, sigs), 65)
                    break
                }
                if iszero(gt(signer, previous)) {
                    failure := 2
                    detail := div(sub(p, sigs), 65)
                    break
                }
                previous := signer
                for {} and(lt(cursor, validatorsEnd), lt(calldataload(cursor), signer)) { cursor := add(cursor, 0x20) } {}
                if or(eq(cursor, validatorsEnd), iszero(eq(calldataload(cursor), signer))) {
                    failure := 3
                    detail := signer
                    break
                }
                signed := add(signed, calldataload(add(cursor, toPower)))
                cursor := add(cursor, 0x20)
            }
        }
        if (failure == 1) revert InvalidSignature(detail);
        if (failure == 2) revert SignersNotAscending(detail);
        if (failure == 3) revert SignerNotInSet(address(uint160(detail)));
        if (3 * signed <= 2 * total) revert QuorumNotReached(signed, total);
    }

    function _sumPowers(uint256[] calldata powers) private pure returns (uint256 total) {
        for (uint256 i; i < powers.length; ++i) {
            total += powers[i];
        }
    }

    // ------------------------------------------------------------------------------------------
    // Bottom-up releases
    // ------------------------------------------------------------------------------------------

    /// @notice Pays `r.amount` RBTC to `r.recipient`, proven by `proof` against the `crossMsgsRoot`
    ///         of the accepted checkpoint of `subnetId` at `checkpointHeight`. Anyone may call;
    ///         each `(subnetId, r.nonce)` pays at most once, whichever checkpoint proves it.
    /// @param proof Sorted-pair Merkle siblings from the leaf
    ///        `keccak256(bytes.concat(keccak256(abi.encode(r))))` up to the root.
    function executeRelease(bytes32 subnetId, uint64 checkpointHeight, Release calldata r, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Subnet storage s = _subnet(subnetId);
        bytes32 root = _crossMsgsRootAt(s, subnetId, checkpointHeight);
        mapping(uint64 => bool) storage released = _released[subnetId];
        if (released[r.nonce]) revert ReleaseAlreadyExecuted(subnetId, checkpointHeight, r.nonce);
        if (processProof(releaseLeaf(r), proof) != root) revert InvalidMerkleProof();
        uint256 available = s.locked;
        if (r.amount > available) revert InsufficientLocked(available, r.amount);
        if (r.recipient == address(0)) revert InvalidRecipient();

        released[r.nonce] = true;
        s.locked = available - r.amount;
        emit ReleaseExecuted(subnetId, checkpointHeight, r.nonce, r.recipient, r.amount);
        _send(r.recipient, r.amount);
    }

    /// @notice The Merkle leaf of a release: `keccak256(bytes.concat(keccak256(abi.encode(r))))`.
    function releaseLeaf(Release calldata r) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(r))));
    }

    /// @notice Folds a sorted-pair Merkle proof from `leaf`; returns the root it implies.
    function processProof(bytes32 leaf, bytes32[] calldata proof) public pure returns (bytes32 computed) {
        computed = leaf;
        for (uint256 i; i < proof.length; ++i) {
            computed = _hashPair(computed, proof[i]);
        }
    }

    function _crossMsgsRootAt(Subnet storage s, bytes32 subnetId, uint64 height) private view returns (bytes32) {
        // Accepted checkpoints are exactly the multiples of the period up to the last height.
        if (height == 0 || height > s.lastHeight || height % s.checkpointPeriod != 0) {
            revert CheckpointNotFound(subnetId, height);
        }
        return _crossMsgsRoots[subnetId][height];
    }

    // ------------------------------------------------------------------------------------------
    // Blocktree root and anchors
    // ------------------------------------------------------------------------------------------

    /// @notice The root of the blocktree (see the contract doc): one leaf per level-1 subnet, at its
    ///         registration index, committing its latest accepted checkpoint. Changes only when a
    ///         checkpoint is accepted.
    /// @dev Updated in place on every accepted checkpoint: `BLOCKTREE_DEPTH` sibling reads and node
    ///      writes, the same cost whether 1 or 65,536 subnets are registered. Deeper subnets do not
    ///      count: they are committed inside their parents' checkpoints.
    function blocktreeRoot() external view returns (bytes32) {
        return _blocktreeRoot;
    }

    /// @notice Every registered subnet in registration order (= leaf index) with its latest
    ///         accepted checkpoint hash (zero before the first, an empty leaf). Off-chain readers
    ///         rebuild the tree and its proofs from this.
    function blocktreeLeaves() external view returns (bytes32[] memory ids, bytes32[] memory checkpointHashes) {
        ids = _subnetIds;
        checkpointHashes = new bytes32[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            checkpointHashes[i] = _subnets[ids[i]].lastCheckpointHash;
        }
    }

    /// @notice Records that the blocktree root `root`, read at RSK height `rskHeight`, was anchored in
    ///         Bitcoin transaction `btcTxid` (internal byte order, as hashed) confirmed at
    ///         `btcHeight`. Only the anchorer may call. `latestAnchor().rskBlockNumber` is the RSK
    ///         block of this call.
    function recordAnchor(bytes32 root, uint64 rskHeight, bytes32 btcTxid, uint64 btcHeight) external {
        if (msg.sender != anchorer) revert NotAnchorer(msg.sender);
        // Bitcoin heights never go backwards: an older anchor cannot replace a newer one.
        if (btcHeight < _latestAnchor.btcHeight) revert AnchorHeightDecreased(_latestAnchor.btcHeight, btcHeight);
        // The anchored root was read at a past block, and anchors follow RSK forward.
        if (rskHeight >= block.number || rskHeight < _latestAnchor.rskHeight) {
            revert InvalidAnchorRskHeight(_latestAnchor.rskHeight, rskHeight);
        }
        _latestAnchor = Anchor(root, btcTxid, btcHeight, rskHeight, uint64(block.number));
        emit AnchorRecorded(root, btcTxid, btcHeight, rskHeight);
    }

    /// @notice Hands anchoring to `next` (a new anchorer key). Only the deployer may.
    function setAnchorer(address next) external {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        if (next == address(0)) revert InvalidAnchorer();
        emit AnchorerChanged(anchorer, next);
        anchorer = next;
    }

    /// @notice The latest recorded anchor (all zero before the first).
    function latestAnchor() external view returns (Anchor memory) {
        return _latestAnchor;
    }

    /// @dev Sets leaf `index` and rehashes the path above it.
    function _updateBlocktree(uint256 index, bytes32 subnetId, bytes32 cpHash) private {
        bytes32 node = keccak256(abi.encodePacked(bytes1(0x00), subnetId, cpHash));
        for (uint256 level; level < BLOCKTREE_DEPTH; ++level) {
            _blocktreeNodes[(level << 32) | index] = node;
            bytes32 sibling = _blocktreeNodes[(level << 32) | (index ^ 1)];
            node = index & 1 == 0 ? _blocktreeNode(node, sibling) : _blocktreeNode(sibling, node);
            index >>= 1;
        }
        _blocktreeRoot = node;
    }

    /// @dev An inner blocktree node; two empty children make an empty node.
    function _blocktreeNode(bytes32 left, bytes32 right) private pure returns (bytes32) {
        if (left == bytes32(0) && right == bytes32(0)) return bytes32(0);
        return keccak256(abi.encodePacked(bytes1(0x01), left, right));
    }

    function _hashPair(bytes32 a, bytes32 b) private pure returns (bytes32 h) {
        if (a > b) (a, b) = (b, a);
        assembly ("memory-safe") {
            mstore(0x00, a)
            mstore(0x20, b)
            h := keccak256(0x00, 0x40)
        }
    }

    // ------------------------------------------------------------------------------------------
    // Membership internals
    // ------------------------------------------------------------------------------------------

    function _insertMember(bytes32 subnetId, address signer, uint96 power) private {
        mapping(address => uint256) storage members = _members[subnetId];
        address previous = address(0);
        uint256 previousNode = members[address(0)];
        address current = address(uint160(previousNode));
        while (current != address(0) && current < signer) {
            previous = current;
            previousNode = members[current];
            current = address(uint160(previousNode));
        }
        members[signer] = uint256(uint160(current)) | (uint256(power) << 160);
        members[previous] = (previousNode & ~ADDRESS_MASK) | uint256(uint160(signer));
    }

    function _removeMember(bytes32 subnetId, address signer) private {
        mapping(address => uint256) storage members = _members[subnetId];
        address previous = address(0);
        uint256 previousNode = members[address(0)];
        while (address(uint160(previousNode)) != signer) {
            previous = address(uint160(previousNode));
            previousNode = members[previous];
        }
        members[previous] = (previousNode & ~ADDRESS_MASK) | (members[signer] & ADDRESS_MASK);
        delete members[signer];
    }

    function _membership(bytes32 subnetId, uint256 count)
        private
        view
        returns (address[] memory signers, uint256[] memory powers)
    {
        mapping(address => uint256) storage members = _members[subnetId];
        signers = new address[](count);
        powers = new uint256[](count);
        address current = address(uint160(members[address(0)]));
        for (uint256 i; i < count; ++i) {
            uint256 node = members[current];
            signers[i] = current;
            powers[i] = node >> 160;
            current = address(uint160(node));
        }
    }

    function _membershipHash(bytes32 subnetId, uint256 count) private view returns (bytes32) {
        (address[] memory signers, uint256[] memory powers) = _membership(subnetId, count);
        return keccak256(abi.encode(signers, powers));
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice `keccak256(abi.encode(signers, powers))`, the validator set hash (signers ascending).
    function validatorSetHash(address[] calldata signers, uint256[] calldata powers) external pure returns (bytes32) {
        return keccak256(abi.encode(signers, powers));
    }

    /// @notice The id `name` would get: `keccak256(bytes("/r" ‖ decimal(block.chainid) ‖ "/" ‖ name))`.
    function computeSubnetId(string calldata name) external view returns (bytes32) {
        return keccak256(bytes(string.concat("/r", _decimal(block.chainid), "/", name)));
    }

    /// @notice The full path of a registered subnet, e.g. `"/r33/alpha"`.
    function subnetPath(bytes32 subnetId) external view returns (string memory) {
        _subnet(subnetId);
        return _paths[subnetId];
    }

    function subnetCount() external view returns (uint256) {
        return _subnetIds.length;
    }

    /// @notice Registered subnet ids in registration order.
    function subnetIds() external view returns (bytes32[] memory) {
        return _subnetIds;
    }

    function getSubnet(bytes32 subnetId) external view returns (SubnetInfo memory info) {
        Subnet storage s = _subnet(subnetId);
        info.path = _paths[subnetId];
        info.minValidators = s.minValidators;
        info.minCollateral = s.minCollateral;
        info.checkpointPeriod = s.checkpointPeriod;
        info.registrationIndex = s.registrationIndex;
        info.active = s.active;
        info.ended = s.ended;
        info.creator = s.creator;
        info.configurationNumber = s.configurationNumber;
        info.validatorCount = s.validatorCount;
        info.confirmedConfigurationNumber = s.confirmedConfigurationNumber;
        info.confirmedValidatorSetHash = s.confirmedValidatorSetHash;
        info.lastCheckpointHeight = s.lastHeight;
        info.lastCheckpointHash = s.lastCheckpointHash;
        info.lastCrossMsgsRoot = _crossMsgsRoots[subnetId][s.lastHeight];
        info.locked = s.locked;
        info.collateral = s.collateral;
        info.nextFundNonce = s.nextFundNonce;
    }

    /// @notice The current membership: signers ascending and their powers.
    function validatorSet(bytes32 subnetId) external view returns (address[] memory signers, uint256[] memory powers) {
        Subnet storage s = _subnet(subnetId);
        return _membership(subnetId, s.validatorCount);
    }

    /// @notice The current members with their keys, signers ascending: what a level-1 subnet's
    ///         genesis is built from (read at a final block). BLS proofs of possession are
    ///         returned unchecked; the nodes check them (the EVM cannot).
    function memberKeys(bytes32 subnetId) external view returns (MemberKeys[] memory members) {
        Subnet storage s = _subnet(subnetId);
        (address[] memory signers, uint256[] memory powers) = _membership(subnetId, s.validatorCount);
        members = new MemberKeys[](signers.length);
        for (uint256 i; i < signers.length; ++i) {
            Validator storage v = _validators[subnetId][_owners[subnetId][signers[i]]];
            members[i] = MemberKeys(signers[i], powers[i], v.cometbftKey, v.blsPublicKey, v.blsPop);
        }
    }

    /// @notice The membership hash recorded at `configurationNumber` (zero if none was recorded:
    ///         configuration 0 is the empty registry before the first join).
    function validatorSetHashAt(bytes32 subnetId, uint64 configurationNumber) external view returns (bytes32) {
        _subnet(subnetId);
        return _setHashes[subnetId][configurationNumber];
    }

    /// @notice The set the next checkpoint must be signed by.
    function confirmedValidatorSet(bytes32 subnetId)
        external
        view
        returns (bytes32 setHash, uint64 configurationNumber)
    {
        Subnet storage s = _subnet(subnetId);
        return (s.confirmedValidatorSetHash, s.confirmedConfigurationNumber);
    }

    function getValidator(bytes32 subnetId, address owner) external view returns (ValidatorInfo memory info) {
        _subnet(subnetId);
        Validator storage v = _validators[subnetId][owner];
        info.status = v.status;
        info.signer = v.signer;
        info.power = v.power;
        info.joinConfigurationNumber = v.joinConfigurationNumber;
        info.leaveConfigurationNumber = v.leaveConfigurationNumber;
        info.cometbftKey = v.cometbftKey;
        info.blsPublicKey = v.blsPublicKey;
        info.blsPop = v.blsPop;
    }

    /// @notice The `crossMsgsRoot` of the accepted checkpoint at `height`.
    function checkpointCrossMsgsRoot(bytes32 subnetId, uint64 height) external view returns (bytes32) {
        Subnet storage s = _subnet(subnetId);
        return _crossMsgsRootAt(s, subnetId, height);
    }

    function isReleaseExecuted(bytes32 subnetId, uint64 nonce) external view returns (bool) {
        return _released[subnetId][nonce];
    }

    // ------------------------------------------------------------------------------------------
    // Helpers
    // ------------------------------------------------------------------------------------------

    /// @dev The signer of a raw 65-byte `r ‖ s ‖ v` signature of `digest` (v 27/28, low s), or
    ///      `address(0)` if it is malformed or invalid.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != SIGNATURE_LENGTH) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > SECP256K1_HALF_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    function _checkName(string calldata name) private pure {
        bytes calldata b = bytes(name);
        uint256 n = b.length;
        if (n == 0 || n > 32) revert InvalidName();
        for (uint256 i; i < n; ++i) {
            bytes1 c = b[i];
            if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d)) revert InvalidName();
        }
    }

    function _decimal(uint256 value) private pure returns (string memory) {
        if (value == 0) return "0";
        uint256 digits;
        for (uint256 t = value; t != 0; t /= 10) ++digits;
        bytes memory out = new bytes(digits);
        while (value != 0) {
            --digits;
            out[digits] = bytes1(uint8(48 + value % 10));
            value /= 10;
        }
        return string(out);
    }
}
