//! ECR lifecycle policies: the policy document ([`LifecyclePolicy`]), what the planner
//! knows of a repository ([`LifecycleInventory`]), and the pure planner ([`plan`]).
//!
//! Nothing here does I/O: [`Registry::preview_lifecycle`](crate::Registry::preview_lifecycle)
//! and [`Registry::apply_lifecycle`](crate::Registry::apply_lifecycle) build the
//! inventory from a repository and carry the plan out; the `lifecycle` example runs the
//! planner over inventory files.

mod inventory;
mod plan;
mod policy;
pub(crate) mod rfc3339;
mod rule;

pub use self::rfc3339::{format as format_rfc3339, parse as parse_rfc3339};

pub use self::inventory::{LifecycleImage, LifecycleInventory};
pub use self::plan::{Decision, MIN_ARCHIVE_DAYS, Outcome, Plan, Reason, plan};
pub(crate) use self::policy::wildcard_match;
pub use self::policy::{
    CountType, LifecyclePolicy, MAX_PATTERN_WILDCARDS, MAX_RULES, Rule, RuleAction, StorageClass,
    TagStatus,
};
