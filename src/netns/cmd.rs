//! Running `ip`, `nft` and `tc` once: argv entries as given, optional JSON on stdin, optional
//! namespace to run in, the exit status and stderr turned into a [`NetnsError`] that names the
//! command, and stdout parsed as JSON with serde.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};

use serde::de::DeserializeOwned;

use super::{NetnsEnter, NetnsError};

/// One invocation of a tool.
pub(crate) struct Tool {
    program: &'static str,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    netns: Option<NetnsEnter>,
}

pub(crate) fn ip<I, S>(args: I) -> Tool
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Tool::new("ip", args)
}

pub(crate) fn tc<I, S>(args: I) -> Tool
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Tool::new("tc", args)
}

pub(crate) fn nft<I, S>(args: I) -> Tool
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Tool::new("nft", args)
}

impl Tool {
    fn new<I, S>(program: &'static str, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Tool { program, args: args.into_iter().map(Into::into).collect(), stdin: None, netns: None }
    }

    /// Runs it inside the namespace (for `nft`, which has no `-n`; `ip` and `tc` take `-n`).
    pub(crate) fn inside(mut self, netns: &NetnsEnter) -> Tool {
        self.netns = Some(netns.clone());
        self
    }

    pub(crate) fn stdin(mut self, bytes: Vec<u8>) -> Tool {
        self.stdin = Some(bytes);
        self
    }

    /// The command as a reader would type it (for messages only; never executed as text).
    pub(crate) fn display(&self) -> String {
        let mut s = String::new();
        if let Some(ns) = &self.netns {
            s.push_str(&format!("(in netns {}) ", ns.name()));
        }
        s.push_str(self.program);
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Runs to completion; stdout on success, an error with stderr otherwise.
    pub(crate) fn run(self) -> Result<String, NetnsError> {
        let command = self.display();
        let mut cmd = Command::new(self.program);
        cmd.args(&self.args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        if let Some(ns) = &self.netns {
            ns.apply(&mut cmd);
        }
        let mut child = cmd.spawn().map_err(|source| NetnsError::Spawn { command: command.clone(), source })?;
        if let Some(bytes) = self.stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            // A tool that exits early closes its end; its stderr then says why.
            let _ = pipe.write_all(&bytes);
        }
        let out = child.wait_with_output().map_err(|source| NetnsError::Spawn { command: command.clone(), source })?;
        if !out.status.success() {
            return Err(NetnsError::Command {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs and parses stdout as JSON; an empty stdout parses as `T::default()` (`ip -j netns
    /// list` prints nothing when there is no namespace).
    pub(crate) fn json<T: DeserializeOwned + Default>(self) -> Result<T, NetnsError> {
        let command = self.display();
        let out = self.run()?;
        parse_json(&command, &out)
    }
}

pub(crate) fn parse_json<T: DeserializeOwned + Default>(command: &str, out: &str) -> Result<T, NetnsError> {
    if out.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(out).map_err(|source| NetnsError::Json {
        command: command.to_string(),
        output: out.chars().take(400).collect(),
        source,
    })
}

/// Whether an error from `ip`/`nft`/`tc` says the object does not exist (teardown of
/// something already gone is not a failure).
pub(crate) fn is_missing(err: &NetnsError) -> bool {
    match err {
        NetnsError::Command { stderr, .. } => {
            let s = stderr.to_ascii_lowercase();
            s.contains("no such file or directory")
                || s.contains("cannot find device")
                || s.contains("does not exist")
                || s.contains("no such device")
                || s.contains("cannot assign requested address")
                || s.contains("invalid handle")
                // `tc qdisc del ... root` when only the default qdisc is left
                || s.contains("handle of zero")
        }
        _ => false,
    }
}
