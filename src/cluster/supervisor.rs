//! The supervisor: the one owner of every node process. Starts nodes with per-node logs, waits
//! for readiness (every admin API answers, all agree on one leader), kills, stops, pauses,
//! resumes and restarts nodes, notices nodes that die on their own, and tears everything down.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::admin::{AdminClient, NodeStatus};
use super::config::NodeFiles;
use crate::process::{self, OwnedProcess, SpawnOptions, Termination};
use crate::topology::NodePlan;

/// Environment given to every node: the admin and metrics ports the plan expects. Chronik's
/// own ports are fixed and ignore these; the stand-in node (tests) binds them.
pub const ENV_ADMIN_PORT: &str = "CHRONIK_CHAOS_NODE_ADMIN_PORT";
pub const ENV_METRICS_PORT: &str = "CHRONIK_CHAOS_NODE_METRICS_PORT";

/// Variables that would override a node's identity or wiring from our environment
/// (`CHRONIK_NODE_ID` wins over the file's `node_id`; `CHRONIK_ADVERTISE` over its address).
pub const NODE_ENV_REMOVED: &[&str] =
    &["CHRONIK_NODE_ID", "CHRONIK_ADVERTISE", "CHRONIK_CONFIG", "CHRONIK_BIND", "CHRONIK_TLS_CERT", "CHRONIK_TLS_KEY"];

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("node {id} exited on its own ({status}); last lines of {log}:\n{tail}")]
    NodeDied { id: u8, status: String, log: PathBuf, tail: String },
    #[error("cluster not ready after {:.1} s: {waiting_for}; last lines of node {id}'s log {log}:\n{tail}", .waited.as_secs_f64())]
    NotReady { waited: Duration, waiting_for: String, id: u8, log: PathBuf, tail: String },
    #[error("cannot start node {id}: {source}")]
    Spawn { id: u8, source: process::ProcessError },
    #[error("cannot write node {id}'s clock offset file: {source}")]
    ClockFile { id: u8, source: std::io::Error },
    #[error("node {0} is not part of this cluster")]
    UnknownNode(u8),
    #[error("interrupted")]
    Interrupted,
}

/// How a node is run.
#[derive(Clone, Debug)]
pub struct NodeCommand {
    /// `chronik-server` (or a stand-in with the same command line).
    pub program: PathBuf,
    /// `RUST_LOG` for the nodes, e.g. `info,chronik_wal::group_commit=warn`.
    pub rust_log: String,
    /// SIGTERM → SIGKILL grace when stopping a node.
    pub stop_grace: Duration,
    /// More environment for every node.
    pub extra_env: Vec<(String, String)>,
    /// libfaketime, preloaded into every node with its own offset file (`crate::clock`), when
    /// a scenario skews a clock.
    pub faketime: Option<PathBuf>,
}

/// How long `BIN version` may take before the binary counts as not a node binary.
pub const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// What `BIN version` says the node binary is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeBinary {
    /// Chronik: the line naming it, e.g. `Chronik Server v2.10.4`.
    Chronik(String),
    /// The chronik-chaos stand-in broker (not Chronik): its version line.
    StandIn(String),
}

impl NodeBinary {
    /// The version line, as results.json records it.
    pub fn version(&self) -> &str {
        match self {
            NodeBinary::Chronik(v) | NodeBinary::StandIn(v) => v,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    #[error("`{bin} version` could not be run: {source}")]
    Spawn { bin: PathBuf, source: process::ProcessError },
    #[error("`{bin} version` did not finish within {limit:?}; it printed {output}")]
    TimedOut { bin: PathBuf, limit: Duration, output: String },
    #[error(
        "`{bin} version` ({status}) printed {output}, which names neither Chronik (a line such as \
         `Chronik Server v2.10.4`) nor the chronik-chaos stand-in"
    )]
    NotChronik { bin: PathBuf, status: String, output: String },
}

/// Runs `bin version` (at most `limit`) and tells Chronik and the stand-in from anything else.
pub fn identify(bin: &std::path::Path, limit: Duration) -> Result<NodeBinary, IdentifyError> {
    let run = process::run_briefly(bin, &["version"], limit)
        .map_err(|source| IdentifyError::Spawn { bin: bin.to_path_buf(), source })?;
    let output = process::strip_ansi(&run.output);
    let Some(status) = run.status else {
        return Err(IdentifyError::TimedOut { bin: bin.to_path_buf(), limit, output: quote_output(&output) });
    };
    match identify_output(&output) {
        Some(found) => Ok(found),
        None => Err(IdentifyError::NotChronik {
            bin: bin.to_path_buf(),
            status: process::describe_exit(Some(status)),
            output: quote_output(&output),
        }),
    }
}

/// The version line in `BIN version` output (colour codes removed): the stand-in's own line, or
/// the first `Chronik Server v…` (Chronik also logs while printing it; a line that is only
/// the version wins over a log line that ends with it).
pub fn identify_output(output: &str) -> Option<NodeBinary> {
    if let Some(l) = output.lines().find(|l| l.trim_start().starts_with("chronik-chaos stand-in")) {
        return Some(NodeBinary::StandIn(l.trim().to_string()));
    }
    const CHRONIK: &str = "Chronik Server v";
    let plain = output.lines().map(str::trim).find(|l| l.starts_with(CHRONIK));
    let logged = || output.lines().find_map(|l| l.find(CHRONIK).map(|at| l[at..].trim()));
    plain.or_else(logged).map(|l| NodeBinary::Chronik(l.to_string()))
}

/// Output for an error message: quoted, at most 10 lines and 600 characters, or "nothing".
fn quote_output(output: &str) -> String {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        return "nothing".to_string();
    }
    let mut text: String = trimmed.lines().take(10).collect::<Vec<_>>().join("\n");
    if text.chars().count() > 600 {
        text = text.chars().take(600).collect::<String>() + "…";
    } else if trimmed.lines().count() > 10 {
        text.push_str("\n…");
    }
    format!("{text:?}")
}

/// What state the supervisor believes a node is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    Paused,
    /// Stopped or killed by us.
    Down,
    /// Exited without being asked.
    Died,
}

/// One node and its process.
pub struct Node {
    pub plan: NodePlan,
    pub files: NodeFiles,
    process: Option<OwnedProcess>,
    state: NodeState,
    admin: AdminClient,
    /// The network namespace the node runs in (`--network netns`).
    netns: Option<crate::netns::NetnsEnter>,
}

impl Node {
    pub fn id(&self) -> u8 {
        self.plan.id
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }

    /// The network namespace the node runs in, if it has its own.
    pub fn netns(&self) -> Option<&crate::netns::NetnsEnter> {
        self.netns.as_ref()
    }
}

/// A node that exited without being asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeExit {
    pub id: u8,
    pub status: String,
    pub tail: String,
}

/// The owner of every node process of one cluster.
pub struct Supervisor {
    nodes: Vec<Node>,
    command: NodeCommand,
    /// Every process started with libfaketime, whose leftovers go at teardown.
    preloaded: Vec<u32>,
}

impl Supervisor {
    pub fn new(plans: &[NodePlan], files: Vec<NodeFiles>, command: NodeCommand) -> Supervisor {
        let nodes = plans
            .iter()
            .cloned()
            .zip(files)
            .map(|(plan, files)| Node {
                admin: AdminClient::new(plan.admin()),
                netns: None,
                plan,
                files,
                process: None,
                state: NodeState::Down,
            })
            .collect();
        Supervisor { nodes, command, preloaded: Vec::new() }
    }

    /// Runs each node with an entry here inside that network namespace (from its next start).
    pub fn with_netns(mut self, mut netns: std::collections::BTreeMap<u8, crate::netns::NetnsEnter>) -> Supervisor {
        for node in self.nodes.iter_mut() {
            node.netns = netns.remove(&node.plan.id);
        }
        self
    }

    /// The libfaketime the nodes run with, if they do.
    pub fn faketime(&self) -> Option<&std::path::Path> {
        self.command.faketime.as_deref()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn node_mut(&mut self, id: u8) -> Result<&mut Node, ClusterError> {
        self.nodes.iter_mut().find(|n| n.plan.id == id).ok_or(ClusterError::UnknownNode(id))
    }

    pub fn node(&self, id: u8) -> Result<&Node, ClusterError> {
        self.nodes.iter().find(|n| n.plan.id == id).ok_or(ClusterError::UnknownNode(id))
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) -> Result<(), ClusterError> {
        let ids: Vec<u8> = self.nodes.iter().map(|n| n.plan.id).collect();
        for id in ids {
            if self.node(id)?.process.is_none() {
                self.start(id)?;
            }
        }
        Ok(())
    }

    /// Starts node `id` (`<program> start --config <file>`), appending to its log.
    pub fn start(&mut self, id: u8) -> Result<(), ClusterError> {
        let command = self.command.clone();
        let node = self.node_mut(id)?;
        let args: Vec<OsString> = vec!["start".into(), "--config".into(), node.files.config.clone().into()];
        let mut envs = vec![
            ("RUST_LOG".to_string(), command.rust_log.clone()),
            // Plain log files: no terminal colour codes.
            ("NO_COLOR".to_string(), "1".to_string()),
            (ENV_ADMIN_PORT.to_string(), node.plan.admin_port.to_string()),
            (ENV_METRICS_PORT.to_string(), node.plan.metrics_port.to_string()),
        ]
        .into_iter()
        .chain(command.extra_env.iter().cloned())
        .collect::<Vec<_>>();
        if let Some(lib) = &command.faketime {
            let file =
                crate::clock::prepare(&node.files.dir).map_err(|source| ClusterError::ClockFile { id, source })?;
            envs.extend(crate::clock::node_env(lib, &file));
        }
        // Chronik resolves some paths (e.g. local segment storage, `./data/segments`) against
        // its working directory: each node runs in its own directory.
        let options = SpawnOptions {
            cwd: Some(node.files.dir.clone()),
            env_remove: NODE_ENV_REMOVED.iter().map(|s| s.to_string()).collect(),
            netns: node.netns.clone(),
        };
        let process =
            OwnedProcess::spawn_with(&format!("node {id}"), &command.program, &args, &envs, &node.files.log, &options)
                .map_err(|source| ClusterError::Spawn { id, source })?
                .with_grace(command.stop_grace);
        if command.faketime.is_some() {
            self.preloaded.push(process.pid());
        }
        let node = self.node_mut(id)?;
        node.process = Some(process);
        node.state = NodeState::Running;
        Ok(())
    }

    /// Waits until every running node's admin API answers and all agree on one leader.
    /// Returns the leader. Fails at once when a node dies, naming it and showing its log.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<u8, ClusterError> {
        let started = Instant::now();
        let mut last: Vec<(u8, Result<NodeStatus, String>)> = Vec::new();
        loop {
            if let Some(exit) = self.check_exits().into_iter().next() {
                let log = self.node(exit.id)?.files.log.clone();
                return Err(ClusterError::NodeDied { id: exit.id, status: exit.status, log, tail: exit.tail });
            }
            last.clear();
            for node in self.nodes.iter().filter(|n| n.state == NodeState::Running) {
                last.push((node.plan.id, node.admin.status().await));
            }
            if let Some(leader) = agreed_leader(&last) {
                return Ok(leader);
            }
            if started.elapsed() > timeout {
                let (id, waiting_for) = describe_wait(&last);
                let node = self.node(id)?;
                let tail = process::log_tail(&node.files.log, 30);
                return Err(ClusterError::NotReady {
                    waited: started.elapsed(),
                    waiting_for,
                    id,
                    log: node.files.log.clone(),
                    tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The leader the running nodes agree on, if they do.
    pub async fn raft_leader(&self) -> Option<u8> {
        let mut answers = Vec::new();
        for node in self.nodes.iter().filter(|n| n.state == NodeState::Running) {
            answers.push((node.plan.id, node.admin.status().await));
        }
        agreed_leader(&answers)
    }

    /// The leader of `topic`/`partition` as the first answering node reports it.
    pub async fn partition_leader(&self, topic: &str, partition: i32) -> Option<u8> {
        for node in self.nodes.iter().filter(|n| n.state == NodeState::Running) {
            if let Ok(status) = node.admin.status().await {
                if let Some(p) = status.partitions.iter().find(|p| p.topic == topic && p.partition == partition) {
                    return p.leader.and_then(|l| u8::try_from(l).ok());
                }
            }
        }
        None
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self, id: u8) -> Result<Option<ExitStatus>, ClusterError> {
        let node = self.node_mut(id)?;
        let status = node.process.take().and_then(|mut p| p.kill());
        node.state = NodeState::Down;
        Ok(status)
    }

    /// SIGTERM, the grace period, then SIGKILL; `Termination::Killed` means it ignored SIGTERM.
    pub fn stop(&mut self, id: u8) -> Result<Termination, ClusterError> {
        let node = self.node_mut(id)?;
        let how = match node.process.take() {
            Some(mut p) => p.terminate(),
            None => Termination::AlreadyExited(None),
        };
        node.state = NodeState::Down;
        Ok(how)
    }

    /// SIGSTOP to the node's process group.
    pub fn pause(&mut self, id: u8) -> Result<(), ClusterError> {
        let node = self.node_mut(id)?;
        if let Some(p) = &node.process {
            let _ = p.signal(Signal::SIGSTOP);
            node.state = NodeState::Paused;
        }
        Ok(())
    }

    /// SIGCONT to the node's process group.
    pub fn resume(&mut self, id: u8) -> Result<(), ClusterError> {
        let node = self.node_mut(id)?;
        if let Some(p) = &node.process {
            let _ = p.signal(Signal::SIGCONT);
            node.state = NodeState::Running;
        }
        Ok(())
    }

    /// Stops node `id` if it runs, then starts it again on the same data directory.
    pub fn restart(&mut self, id: u8) -> Result<Termination, ClusterError> {
        let how = self.stop(id)?;
        self.start(id)?;
        Ok(how)
    }

    /// Nodes that exited without being asked since the last call; they are marked `Died`.
    pub fn check_exits(&mut self) -> Vec<NodeExit> {
        let mut out = Vec::new();
        for node in self.nodes.iter_mut() {
            let Some(p) = &node.process else { continue };
            if let Some(status) = p.try_exit() {
                out.push(NodeExit { id: node.plan.id, status: process::describe_exit(status), tail: p.log_tail(30) });
                node.process = None;
                node.state = NodeState::Died;
            }
        }
        out
    }

    /// Stops every node (SIGTERM, grace, SIGKILL); reports how each ended.
    pub fn teardown(&mut self) -> Vec<(u8, Termination)> {
        let mut out = Vec::new();
        for node in self.nodes.iter_mut() {
            if let Some(mut p) = node.process.take() {
                out.push((node.plan.id, p.terminate()));
                node.state = NodeState::Down;
            }
        }
        for pid in self.preloaded.drain(..) {
            crate::clock::remove_leftovers(pid);
        }
        out
    }

    /// Leaves every node running without an owner here; returns `(id, pid)`.
    pub fn detach(mut self) -> Vec<(u8, u32)> {
        self.nodes.iter_mut().filter_map(|n| n.process.take().map(|p| (n.plan.id, p.detach()))).collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The leader every answering node names, when all answered and all name the same one.
fn agreed_leader(answers: &[(u8, Result<NodeStatus, String>)]) -> Option<u8> {
    if answers.is_empty() {
        return None;
    }
    let mut leader = None;
    for (_, answer) in answers {
        let l = answer.as_ref().ok()?.leader_id?;
        match leader {
            None => leader = Some(l),
            Some(prev) if prev != l => return None,
            _ => {}
        }
    }
    leader.and_then(|l| u8::try_from(l).ok())
}

/// The node to blame for not being ready, and what we were waiting for.
fn describe_wait(answers: &[(u8, Result<NodeStatus, String>)]) -> (u8, String) {
    if let Some((id, Err(e))) = answers.iter().find(|(_, a)| a.is_err()) {
        return (*id, format!("node {id}'s admin API: {e}"));
    }
    if let Some((id, _)) = answers.iter().find(|(_, a)| matches!(a, Ok(s) if s.leader_id.is_none())) {
        return (*id, format!("node {id} knows no leader yet"));
    }
    let views: Vec<String> = answers
        .iter()
        .map(|(id, a)| {
            format!("n{id}→{}", a.as_ref().ok().and_then(|s| s.leader_id).map_or("?".into(), |l| l.to_string()))
        })
        .collect();
    let id = answers.first().map_or(1, |(id, _)| *id);
    (id, format!("nodes disagree on the leader ({})", views.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chronik_and_the_stand_in_are_told_from_anything_else() {
        let chronik = "\u{1b}[2m2026-11-26T12:35:24Z\u{1b}[0m INFO chronik_server: Chronik Server v2.10.4\n\
                       Chronik Server v2.10.4\nBuild features:\n  - Search: enabled\n";
        let clean = process::strip_ansi(chronik);
        assert_eq!(identify_output(&clean), Some(NodeBinary::Chronik("Chronik Server v2.10.4".into())));
        assert_eq!(
            identify_output("2026 INFO chronik_server: Chronik Server v2.9.0\n"),
            Some(NodeBinary::Chronik("Chronik Server v2.9.0".into()))
        );
        let standin = "chronik-chaos stand-in broker v0.1.0 (not Chronik)\n";
        assert_eq!(identify_output(standin), Some(NodeBinary::StandIn(standin.trim().into())));
        assert_eq!(identify_output(""), None);
        assert_eq!(identify_output("GNU coreutils 9.1\n"), None);
        assert_eq!(identify_output("usage: chronik-client version\n"), None);
    }

    #[test]
    fn a_binary_that_is_not_chronik_is_refused_with_what_it_printed() {
        let err = identify(std::path::Path::new("/bin/true"), IDENTIFY_TIMEOUT).unwrap_err().to_string();
        assert_eq!(
            err,
            "`/bin/true version` (exit code 0) printed nothing, which names neither Chronik (a line such as \
             `Chronik Server v2.10.4`) nor the chronik-chaos stand-in"
        );
        let err = identify(std::path::Path::new("/bin/echo"), IDENTIFY_TIMEOUT).unwrap_err().to_string();
        assert!(err.contains("printed \"version\""), "{err}");
        // `sleep version` fails at once; a binary that hangs is cut off at the limit.
        let tmp = std::env::temp_dir().join(format!("chronik-chaos-hang-{}", std::process::id()));
        std::fs::write(&tmp, "#!/bin/sh\necho starting\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let started = Instant::now();
        let err = identify(&tmp, Duration::from_millis(300)).unwrap_err().to_string();
        let _ = std::fs::remove_file(&tmp);
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        assert!(err.contains("did not finish within 300ms; it printed \"starting\""), "{err}");
    }

    fn st(leader: Option<u64>) -> Result<NodeStatus, String> {
        Ok(NodeStatus { leader_id: leader, ..NodeStatus::default() })
    }

    #[test]
    fn leader_agreement() {
        assert_eq!(agreed_leader(&[(1, st(Some(2))), (2, st(Some(2))), (3, st(Some(2)))]), Some(2));
        assert_eq!(agreed_leader(&[(1, st(Some(2))), (2, st(Some(3)))]), None);
        assert_eq!(agreed_leader(&[(1, st(Some(2))), (2, st(None))]), None);
        assert_eq!(agreed_leader(&[(1, st(Some(2))), (2, Err("down".into()))]), None);
        assert_eq!(agreed_leader(&[]), None);
    }

    #[test]
    fn waiting_names_the_node_to_blame() {
        let (id, why) = describe_wait(&[(1, st(Some(1))), (2, Err("no answer".into()))]);
        assert_eq!((id, why.as_str()), (2, "node 2's admin API: no answer"));
        let (id, why) = describe_wait(&[(1, st(Some(1))), (3, st(None))]);
        assert_eq!((id, why.as_str()), (3, "node 3 knows no leader yet"));
        let (_, why) = describe_wait(&[(1, st(Some(1))), (2, st(Some(2)))]);
        assert_eq!(why, "nodes disagree on the leader (n1→1, n2→2)");
    }
}
