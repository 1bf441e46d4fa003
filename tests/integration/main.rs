//! Integration tests: the handlers against the AWS emulator (moto) over its real wire protocol.
//! One test binary, one module per concern; `make test` starts the emulator first.

mod authorizer;
mod aws_logins;
mod concurrency;
mod crud;
mod custody;
mod dry_run;
mod events;
mod faults;
mod history;
mod hostile;
mod hostile_peers;
mod identity;
mod input;
mod limits;
mod logins;
mod logs;
mod names;
mod paging;
mod probes;
mod saas;
mod secrets;
mod stall;
mod support;
mod sweep;
mod tls;
mod tunnels;
