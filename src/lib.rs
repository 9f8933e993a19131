//! chronik-chaos: proves whether a Chronik cluster survives a bad network. The library holds
//! every capability; the `chronik-chaos` binary (`src/main.rs`) is a thin command line over it.

pub mod checker;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod connectivity;
pub mod decision;
pub mod disk;
pub mod fault;
pub mod github;
pub mod group_workload;
pub mod history;
pub mod liveness;
pub mod log_end;
pub mod nemesis;
pub mod netns;
pub mod observer;
pub mod os;
pub mod partition_reader;
pub mod percent;
pub mod probe;
pub mod process;
pub mod proof;
pub mod record_origin;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod sock_diag;
pub mod standin;
pub mod topology;
pub mod toxiproxy;
pub mod txn_workload;
pub mod verdict;
pub mod workload;
