//! The state machine's domains, in the order their hooks run.

pub mod accounts;
pub mod checkpoints;
pub mod crossnet;
pub mod fees;
pub mod keyspaces;
pub mod parent;
pub mod registry;
pub mod rsk;

use ipsat_core::Action;

use crate::component::{ActionHandler, Component};

pub use accounts::Accounts;
pub use checkpoints::Checkpoints;
pub use crossnet::Crossnet;
pub use fees::Fees;
pub use keyspaces::Keyspaces;
pub use parent::Parent;
pub use registry::Registry;
pub use rsk::Rsk;

/// Every component, in the fixed order of `init_chain`, `begin_block` and `end_block`.
pub const ALL: &[&dyn Component] = &[
    &Accounts,
    &Fees,
    &Keyspaces,
    &Registry,
    &Checkpoints,
    &Crossnet,
    &Parent,
    &Rsk,
];

/// The handler of `action`: the only place that knows which component owns which message.
pub fn handler(action: &Action) -> &dyn ActionHandler {
    match action {
        Action::Transfer(transfer) => transfer,
        Action::KeyspaceCreate(create) => create,
        Action::KvPut(put) => put,
        Action::KvDelete(delete) => delete,
        Action::SubnetCreate(create) => create,
        Action::SubnetJoin(join) => join,
        Action::SubnetLeave(leave) => leave,
        Action::SubnetKill(kill) => kill,
        Action::Fund(fund) => fund,
        Action::Release(release) => release,
        Action::CrossCall(call) => call,
    }
}
