//! The functional suites, built into one test binary (one link instead of one per file): each
//! file here is a module named after the area it tests, so `cargo test --test api money_` runs
//! the money ones. The suites that need a process of their own (a global logger, timing or
//! memory measured in-process, an outside tool) stay beside this folder as their own binaries.

// The harness and the fakes of the outside world, shared with those other binaries.
#[path = "../common/mod.rs"]
mod common;
#[path = "../fake_llm/mod.rs"]
mod fake_llm;
#[path = "../fake_sms/mod.rs"]
mod fake_sms;
#[path = "../reliability_support/mod.rs"]
mod reliability_support;

mod chat_support;
mod internals;
mod money_support;
mod sms_app;

mod auth_abuse;
mod auth_durable;
mod auth_flow;
mod auth_input;
mod auth_register;
mod chat_faults;
mod chat_http;
mod chat_slow_pool;
mod chat_smoke;
mod chat_tools;
mod chat_ws;
mod cli;
mod fake_llm_selftest;
mod http_framing;
mod isolation;
mod latency_paths;
mod money_api;
mod money_dates;
mod money_input;
mod money_invariant;
mod money_rollover;
mod money_smoke;
mod money_spending;
mod notifications;
mod onboarding_blank;
mod operator_routes;
mod recurring;
mod recurring_post;
mod replication_core;
mod service;
mod sync;
mod sync_writes;
mod ws_sessions;
