//! Whether this process can use `--network netns`: the capabilities (CAP_NET_ADMIN for links,
//! addresses, nftables and tc; CAP_SYS_ADMIN for `ip netns add` and `setns`) and the tools
//! (`ip` and `tc` from iproute2, `nft` from nftables). What is missing is one typed error that
//! names all of it and the mode that needs none of it.

/// One thing `--network netns` needs and does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A capability absent from the effective set (not root, or root without it).
    Capability { name: &'static str, needed_for: &'static str },
    /// A command that is not installed (or not on `PATH`).
    Tool { program: &'static str, package: &'static str },
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Capability { name, needed_for } => {
                write!(f, "{name} (for {needed_for}; run as root, e.g. with sudo)")
            }
            Missing::Tool { program, package } => {
                write!(f, "the `{program}` command (Debian/Ubuntu package {package})")
            }
        }
    }
}

/// What is missing for `--network netns`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "--network netns cannot run here: missing {}; the default --network proxy (Toxiproxy only) needs no privileges and none of these tools",
    .missing.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
)]
pub struct PrivilegeError {
    pub missing: Vec<Missing>,
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Checks the capabilities of this process and the tools on `PATH`.
pub fn check_privileges() -> Result<(), PrivilegeError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let tools = [("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")]
        .map(|(program, package)| (program, package, on_path(program)));
    let missing = missing_from(effective_caps(&status), &tools);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError { missing })
    }
}

/// The effective capability set from the text of `/proc/self/status` (`CapEff:` in hex; 0
/// when absent).
pub fn effective_caps(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// What is missing, given the effective capabilities and `(program, package, found)` per tool.
pub fn missing_from(caps: u64, tools: &[(&'static str, &'static str, bool)]) -> Vec<Missing> {
    let mut missing = Vec::new();
    if caps & (1 << CAP_NET_ADMIN) == 0 {
        missing.push(Missing::Capability {
            name: "CAP_NET_ADMIN",
            needed_for: "links, addresses, nftables rules and tc qdiscs",
        });
    }
    if caps & (1 << CAP_SYS_ADMIN) == 0 {
        missing.push(Missing::Capability { name: "CAP_SYS_ADMIN", needed_for: "creating and entering namespaces" });
    }
    for &(program, package, found) in tools {
        if !found {
            missing.push(Missing::Tool { program, package });
        }
    }
    missing
}

/// Whether an executable file named `program` is in a directory of `PATH`.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_read_from_proc_status() {
        assert_eq!(effective_caps("Name:\tx\nCapEff:\t000001ffffffffff\n"), 0x1ff_ffff_ffff);
        assert_eq!(effective_caps("Name:\tx\n"), 0);
    }

    #[test]
    fn an_unprivileged_user_without_nft_is_told_everything_and_the_mode_that_works() {
        let tools = [("ip", "iproute2", true), ("tc", "iproute2", true), ("nft", "nftables", false)];
        let err = PrivilegeError { missing: missing_from(0, &tools) };
        expect_test::expect![[r#"--network netns cannot run here: missing CAP_NET_ADMIN (for links, addresses, nftables rules and tc qdiscs; run as root, e.g. with sudo), CAP_SYS_ADMIN (for creating and entering namespaces; run as root, e.g. with sudo), the `nft` command (Debian/Ubuntu package nftables); the default --network proxy (Toxiproxy only) needs no privileges and none of these tools"#]].assert_eq(&err.to_string());
        let root = (1u64 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN);
        assert_eq!(missing_from(root, &tools), [Missing::Tool { program: "nft", package: "nftables" }]);
        assert!(missing_from(root, &tools[..2]).is_empty());
    }
}
