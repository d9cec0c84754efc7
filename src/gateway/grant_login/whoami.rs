//! `whoami`: the identity and the ceiling of each role it holds.

use super::{Requester, ServerContext};
use crate::policy::Approval;

pub(super) fn whoami(ctx: &ServerContext, who: &Requester) -> String {
    let mut out = format!("identity {}\n", who.identity.name);
    let policy = ctx.policy();
    for name in &who.identity.roles {
        let Some(role) = policy.roles.get(name) else {
            continue;
        };
        out.push_str(&format!(
            "role {}: targets {:?}; exec {:?}; open {:?}; pty {}; max_ttl {}; approval {}\n",
            role.name,
            role.targets,
            role.exec.to_strings(),
            role.open.to_strings(),
            role.pty,
            crate::policy::format_duration(role.max_ttl),
            if role.approval == Approval::Auto {
                "auto"
            } else {
                "manual"
            },
        ));
    }
    out
}
