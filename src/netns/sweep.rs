//! The leftovers of killed runs: [`sweep`] finds namespaces, root-namespace links and nft
//! tables named `<product><4 hex>[-...]`, and removes those of runs whose state file names an
//! owner that no longer runs (same pid and start time), after killing the processes still
//! inside their namespaces (found by inode in `/proc/*/ns/net`, so also after the namespace's
//! mount is gone). Objects of live runs are left alone, and so are objects with no state file:
//! this tool writes the state file before it makes anything, so those are someone else's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::exec::{self, NetnsEnter};
use super::fabric::belongs_to;
use super::ip;
use super::nft;
use super::state::StateDir;
use super::{check_privileges, cmd, NetnsError};

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Runs whose owner was gone, with what was removed.
    pub runs: Vec<SweptRun>,
    /// Runs whose owner still runs (left alone).
    pub live: Vec<String>,
    /// Objects that look like ours but have no state file (left alone).
    pub unowned: Vec<String>,
}

/// One killed run's leftovers and what became of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweptRun {
    pub run: String,
    pub owner_pid: u32,
    /// Processes still inside the run's namespaces, killed with SIGKILL (`pid N (command)`).
    pub killed: Vec<String>,
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
    /// Root-namespace nft tables (`family name`).
    pub tables: Vec<String>,
    /// The state file, once removed (kept while anything could not be removed).
    pub state_file: Option<PathBuf>,
    pub errors: Vec<String>,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.unowned.is_empty()
    }
}

impl std::fmt::Display for Swept {
    /// The notice for the user: one line per killed run, one for unowned objects.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in &self.runs {
            let mut parts = Vec::new();
            if !r.killed.is_empty() {
                parts.push(format!("killed {}", r.killed.join(", ")));
            }
            for (what, names) in [("namespaces", &r.namespaces), ("links", &r.links), ("nft tables", &r.tables)] {
                if !names.is_empty() {
                    parts.push(format!("{what} {}", names.join(", ")));
                }
            }
            if r.state_file.is_some() {
                parts.push("its state file".into());
            }
            write!(
                f,
                "removed the leftovers of run {} (owner pid {} is gone): {}",
                r.run,
                r.owner_pid,
                parts.join("; ")
            )?;
            if !r.errors.is_empty() {
                write!(f, "; could not remove: {}", r.errors.join("; "))?;
            }
            writeln!(f)?;
        }
        if !self.unowned.is_empty() {
            writeln!(
                f,
                "left alone (named like this tool's but no state file says whose): {}",
                self.unowned.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The run a name belongs to when it is `<product><4 lowercase hex>` alone or followed by
/// `-`: `cc1a2b-n1` → `cc1a2b`.
pub fn run_of<'a>(name: &'a str, product: &str) -> Option<&'a str> {
    let rest = name.strip_prefix(product)?;
    let hex = rest.get(..4)?;
    if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let after = &rest[4..];
    (after.is_empty() || after.starts_with('-')).then(|| &name[..product.len() + 4])
}

/// Removes the leftovers of killed runs named with `product` (normally
/// [`PRODUCT_PREFIX`](super::PRODUCT_PREFIX)) and returns what it removed.
pub fn sweep(product: &str) -> Result<Swept, NetnsError> {
    check_privileges()?;
    sweep_in(product, &StateDir::default_dir())
}

fn sweep_in(product: &str, states: &StateDir) -> Result<Swept, NetnsError> {
    let _lock = states.lock()?;
    let namespaces = ip::netns_names()?;
    let links: Vec<String> = ip::links()?.into_iter().map(|l| l.ifname).collect();
    let tables = nft::tables(None)?;

    let mut runs: Vec<String> = namespaces
        .iter()
        .chain(&links)
        .chain(tables.iter().map(|t| &t.name))
        .filter_map(|n| run_of(n, product))
        .chain(states.runs().iter().filter_map(|r| run_of(r, product)))
        .map(str::to_string)
        .collect();
    runs.sort();
    runs.dedup();

    let mut swept = Swept::default();
    for run in runs {
        let Some(state) = states.read(&run) else {
            let mut names: Vec<String> =
                namespaces.iter().chain(&links).filter(|n| belongs_to(n, &run)).cloned().collect();
            names.extend(
                tables.iter().filter(|t| belongs_to(&t.name, &run)).map(|t| format!("{} {}", t.family, t.name)),
            );
            if states.file_of(&run).exists() {
                names.push(format!("{} (unreadable)", states.file_of(&run).display()));
            }
            swept.unowned.extend(names);
            continue;
        };
        if state.owner_alive() {
            swept.live.push(run);
            continue;
        }
        let mut done = SweptRun { run: run.clone(), owner_pid: state.pid, ..SweptRun::default() };
        let mut own: Vec<&String> = namespaces.iter().filter(|n| belongs_to(n, &run)).collect();
        own.sort();

        // Processes first: a process keeps its namespace (and veth) alive after `ip netns del`.
        let mut inodes: Vec<u64> = state.namespaces.iter().map(|n| n.inode).collect();
        inodes.extend(own.iter().filter_map(|n| exec::netns_inode(n)));
        inodes.sort_unstable();
        inodes.dedup();
        let me = std::process::id();
        let pids: Vec<u32> = inodes.iter().flat_map(|i| exec::processes_in(*i)).filter(|p| *p != me).collect();
        for &pid in &pids {
            let who = crate::os::process_info(pid).map(|i| i.to_string()).unwrap_or_else(|| format!("pid {pid}"));
            match kill(Pid::from_raw(pid as i32), Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => done.killed.push(who),
                Err(e) => done.errors.push(format!("cannot kill {who}: {e}")),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|p| crate::os::pid_alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }

        for ns in own {
            if let Ok(enter) = NetnsEnter::open(ns) {
                // Not needed (the table goes with the namespace), but said and done explicitly.
                let _ = nft::delete_table(&enter, &run);
            }
            note(&mut done, ns, cmd::ip(["netns", "del", ns.as_str()]).run().map(|_| ()), |d| &mut d.namespaces);
        }
        // Veth host ends vanish with their namespace; what is left now is listed again.
        let mut left: Vec<String> =
            ip::links()?.into_iter().map(|l| l.ifname).filter(|n| belongs_to(n, &run)).collect();
        // Veths before the bridge they are enslaved to.
        left.sort_by_key(|n| n.ends_with("-br"));
        for link in left {
            note(&mut done, &link, cmd::ip(["link", "del", link.as_str()]).run().map(|_| ()), |d| &mut d.links);
        }
        for table in tables.iter().filter(|t| belongs_to(&t.name, &run)) {
            let name = format!("{} {}", table.family, table.name);
            note(&mut done, &name, nft::delete_root_table(table), |d| &mut d.tables);
        }
        if done.errors.is_empty() {
            match states.remove(&run) {
                Ok(()) => done.state_file = Some(states.file_of(&run)),
                Err(e) => done.errors.push(e.to_string()),
            }
        }
        swept.runs.push(done);
    }
    Ok(swept)
}

/// Records a removal (or why it failed) in `done`.
fn note(
    done: &mut SweptRun,
    name: &str,
    result: Result<(), NetnsError>,
    list: impl FnOnce(&mut SweptRun) -> &mut Vec<String>,
) {
    match result {
        Ok(()) => list(done).push(name.to_string()),
        Err(e) if cmd::is_missing(&e) => {}
        Err(e) => done.errors.push(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_to_their_run_by_product_prefix_hex_and_dash() {
        let check = |name: &str, expected: Option<&str>| assert_eq!(run_of(name, "cc"), expected, "{name}");
        check("cc1a2b-n1", Some("cc1a2b"));
        check("cc1a2b-br", Some("cc1a2b"));
        check("cc1a2b", Some("cc1a2b"));
        check("cc1a2b-probe", Some("cc1a2b"));
        check("cc5", None);
        check("cc1A2b-n1", None);
        check("cc1a2bx", None);
        check("cc1a2g-n1", None);
        check("eth0", None);
        check("c", None);
    }

    #[test]
    fn the_notice_names_what_was_removed_and_what_was_left() {
        let swept = Swept {
            runs: vec![SweptRun {
                run: "cc1a2b".into(),
                owner_pid: 4242,
                killed: vec!["pid 4300 (sleep 300)".into()],
                namespaces: vec!["cc1a2b-n1".into()],
                links: vec!["cc1a2b-br".into()],
                tables: vec![],
                state_file: Some("/run/chronik-chaos/netns/cc1a2b.json".into()),
                errors: vec![],
            }],
            live: vec!["cc0001".into()],
            unowned: vec!["cc9999-n1".into()],
        };
        expect_test::expect![[r#"
            removed the leftovers of run cc1a2b (owner pid 4242 is gone): killed pid 4300 (sleep 300); namespaces cc1a2b-n1; links cc1a2b-br; its state file
            left alone (named like this tool's but no state file says whose): cc9999-n1
        "#]]
        .assert_eq(&swept.to_string());
    }
}
