//! `scripts/install-toxiproxy.sh` against a local HTTP server standing in for GitHub's release
//! downloads (the real download needs network CI does not have): an unknown version is refused
//! naming the known ones; a download whose SHA-256 differs from the committed one is discarded;
//! one that matches is installed. Needs bash and curl (skips, saying so, without curl).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-toxiproxy.sh");

/// Serves `body` to every request; returns the base URL.
fn stand_in_release_server(body: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    format!("http://{addr}")
}

fn need_curl() {
    assert!(
        Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success()),
        "curl is needed (see the README's list for a fresh machine)"
    );
}

fn install(dest: &Path, envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(SCRIPT).arg(dest);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{}-{arch}", std::env::consts::OS)
}

#[test]
fn an_unknown_version_is_refused_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = install(dir.path(), &[("TOXIPROXY_VERSION", "9.9.9")]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("no committed checksum for toxiproxy-server-9.9.9-"), "{e}");
    assert!(e.contains("2.12.0-linux-amd64"), "{e}");
}

#[test]
#[ignore = "needs curl and sha256sum (README, on a fresh machine); .ci/run runs it"]
fn a_download_with_the_wrong_checksum_is_discarded() {
    need_curl();
    let dir = tempfile::tempdir().unwrap();
    let url = stand_in_release_server(b"not the real toxiproxy-server");
    let out = install(dir.path(), &[("TOXIPROXY_VERSION", "2.12.0"), ("TOXIPROXY_BASE_URL", &url)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("checksum mismatch"), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing may be installed or left behind: {left:?}");
}

#[test]
#[ignore = "needs curl and sha256sum (README, on a fresh machine); .ci/run runs it"]
fn a_download_with_the_committed_checksum_is_installed() {
    need_curl();
    let dir = tempfile::tempdir().unwrap();
    let body: &'static [u8] = b"#!/bin/sh\necho stand-in toxiproxy-server\n";
    // The checksum file this run trusts lists the stand-in's own digest.
    let sum =
        Command::new("sha256sum").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn();
    let mut sum = sum.expect("sha256sum is needed (coreutils; see the README's list for a fresh machine)");
    sum.stdin.take().unwrap().write_all(body).unwrap();
    let digest = String::from_utf8(sum.wait_with_output().unwrap().stdout).unwrap();
    let digest = digest.split_whitespace().next().unwrap().to_string();
    let checksums = dir.path().join("sums");
    std::fs::write(&checksums, format!("{digest}  toxiproxy-server-1.0.0-{}\n", platform())).unwrap();
    let dest = dir.path().join("bin");
    let url = stand_in_release_server(body);
    let out = install(
        &dest,
        &[
            ("TOXIPROXY_VERSION", "v1.0.0"),
            ("TOXIPROXY_BASE_URL", &url),
            ("TOXIPROXY_CHECKSUMS", checksums.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let installed = dest.join("toxiproxy-server");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), installed.to_str().unwrap());
    assert_eq!(std::fs::read(&installed).unwrap(), body);
    let run = Command::new(&installed).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "stand-in toxiproxy-server\n", "installed executable");
}

#[test]
fn every_committed_checksum_line_is_well_formed() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/toxiproxy.sha256")).unwrap();
    let mut n = 0;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty()) {
        let (sum, name) = line.split_once("  ").unwrap_or_else(|| panic!("line {}: `<sha256>  <name>`", i + 1));
        assert!(sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()), "line {}: {sum}", i + 1);
        assert!(name.starts_with("toxiproxy-server-2."), "line {}: {name}", i + 1);
        n += 1;
    }
    assert!(n >= 4);
}
