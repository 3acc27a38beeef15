//! The coach's tool loop (shared/API.md, "Coach tools"): one question answered in rounds.
//! A round is one streamed request; when the model answers it with tool calls, the calls run
//! as the asking user, their results go back, and the model is asked again: at most
//! `TOOL_ROUNDS` rounds with tools and `MAX_CALLS` calls, then one last request without.
//!
//! `Turn` is driven by the upstream's events, the same way by both transports: the WebSocket
//! loop feeds it from its channel between reads of the socket (so a cancel lands between two
//! events), HTTP from a channel of its own (`answer::run_to_end`). It returns `Step`s: what to
//! show. The text of a round that offered tools is held back until the round ends without a
//! tool call, so nothing said before a tool call is ever shown, and `content` stays the final
//! answer only.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::Sender;

use rusqlite::{Transaction, params};
use serde_json::{Value, json};

use super::answer::{self, Coach, Pending, Question};
use super::quota;
use super::tools::{self, Caller};
use super::upstream::{self, RoundEnd, StreamEvent, StreamHandle, ToolCall, UpstreamError, Usage};
use crate::config::ToolsMode;
use crate::error::Result;

/// Requests that may offer tools, per question.
pub(crate) const TOOL_ROUNDS: u32 = 3;
/// Tool calls run per question; later ones get `CALL_LIMIT` as their result.
pub(crate) const MAX_CALLS: usize = 6;
/// How long `OPENAI_TOOLS=auto` stops offering tools after the upstream refused them.
pub(crate) const BACK_OFF_SECS: i64 = 600;
const CALL_LIMIT: &str = "call limit reached";

/// Whether tools are offered: `OPENAI_TOOLS`, and under `auto` the back-off after a refusal.
/// One per server (`App::chat_tools`).
pub struct ToolSwitch {
    mode: ToolsMode,
    /// Unix seconds (app clock) until which `auto` offers nothing; 0 when never refused.
    backed_off_until: AtomicI64,
}

impl ToolSwitch {
    pub(crate) fn new(config: &crate::config::LlmSettings) -> ToolSwitch {
        ToolSwitch {
            mode: config.tools,
            backed_off_until: AtomicI64::new(0),
        }
    }

    pub(crate) fn offering(&self, now: i64) -> bool {
        match self.mode {
            ToolsMode::Off => false,
            ToolsMode::On => true,
            ToolsMode::Auto => now >= self.backed_off_until.load(Ordering::Relaxed),
        }
    }

    fn back_off(&self, now: i64) {
        self.backed_off_until
            .store(now + BACK_OFF_SECS, Ordering::Relaxed);
    }

    /// For the health page: `on`, `off`, `auto:offered` or `auto:backed_off`.
    pub(crate) fn state(&self, now: i64) -> &'static str {
        match self.mode {
            ToolsMode::On => "on",
            ToolsMode::Off => "off",
            ToolsMode::Auto if self.offering(now) => "auto:offered",
            ToolsMode::Auto => "auto:backed_off",
        }
    }

    fn tools_for(&self, app: &Coach<'_>, who: &Caller<'_>) -> Vec<Value> {
        if !self.offering(app.clock.unix()) {
            return Vec::new();
        }
        app.db.read(|c| tools::offered(c, who)).unwrap_or_else(|e| {
            log::error!("chat: listing the tools failed: {e:?}");
            Vec::new()
        })
    }
}

/// What a transport shows for one upstream event.
#[derive(Debug)]
pub(crate) enum Step {
    /// A piece of the final answer.
    Show(String),
    /// A tool is being run (a `status` frame).
    LookingUp(String),
    /// The answer is complete, saved and counted; `Turn::shown` holds it.
    Done {
        usage: Usage,
        tools_used: Vec<String>,
    },
    /// The model could not answer: `code` for the error frame, then the fallback `answer`,
    /// already saved.
    Failed {
        code: &'static str,
        message: String,
        answer: String,
        tools_used: Vec<String>,
    },
}

/// A transport that shows the pieces of a round without tools from the thread that reads
/// them from the upstream, instead of taking each through `on_event` (the WebSocket: one
/// thread hop less per piece; `crate::ws::wire::Outlet`). Only the round's end and failure
/// then come to `on_event`.
pub(crate) trait Shows: Send + Sync {
    /// The pieces of answer `id` may be shown from now on; `shown` is what it showed before.
    fn begin(&self, id: u64, shown: &str);
    /// Shows a piece of answer `id`; false once that answer is no longer shown.
    fn show(&self, id: u64, piece: String) -> bool;
    /// Shows nothing more of answer `id`: what it showed, if it was the one shown.
    fn end(&self, id: u64) -> Option<String>;
}

/// One question being answered.
pub(crate) struct Turn {
    pub(crate) question: Question,
    pub(crate) pending: Pending,
    /// Shared by every round: one cancel stops them all.
    handle: StreamHandle,
    id: u64,
    tx: Sender<(u64, StreamEvent)>,
    messages: Vec<Value>,
    /// Offered in the round under way (empty: none).
    tools: Vec<Value>,
    tool_rounds: u32,
    calls: usize,
    /// The text of the round under way, held back while the round may still call a tool.
    held: Vec<String>,
    /// The final answer as shown so far.
    pub(crate) shown: String,
    total: Usage,
    tools_used: Vec<String>,
    called: bool,
    /// The transport's own way of showing pieces, if it has one.
    direct: Option<Arc<dyn Shows>>,
    /// The round under way shows its pieces through `direct`.
    direct_round: bool,
}

impl Turn {
    /// Starts the first round. Events come to `tx`, tagged with `id`; the pieces of a round
    /// without tools go to `direct` instead, when given.
    pub(crate) fn start(
        app: &Coach<'_>,
        question: Question,
        mut pending: Pending,
        id: u64,
        tx: Sender<(u64, StreamEvent)>,
        direct: Option<Arc<dyn Shows>>,
    ) -> Turn {
        let tools = app.tools.tools_for(app, &caller(app, &question.user_id));
        // Taken, not copied: the request's messages are kept once per answer, as JSON.
        let messages = std::mem::take(&mut pending.messages)
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        let mut turn = Turn {
            question,
            pending,
            handle: StreamHandle::new(),
            id,
            tx,
            messages,
            tools,
            tool_rounds: 0,
            calls: 0,
            held: Vec::new(),
            shown: String::new(),
            total: Usage::default(),
            tools_used: Vec::new(),
            called: false,
            direct,
            direct_round: false,
        };
        turn.ask(app);
        turn
    }

    /// Stops the round under way and every later one; `shown` is then all the user saw.
    pub(crate) fn cancel(&mut self) {
        self.handle.cancel();
        self.end_direct();
    }

    /// Takes back from `direct` what the round under way showed through it.
    fn end_direct(&mut self) {
        if !self.direct_round {
            return;
        }
        self.direct_round = false;
        if let Some(shown) = self.direct.as_ref().and_then(|d| d.end(self.id)) {
            self.shown = shown;
        }
    }

    fn ask(&mut self, app: &Coach<'_>) {
        let body = upstream::request_body(app.config, &self.messages, &self.tools);
        let (tx, id) = (self.tx.clone(), self.id);
        match self.direct.clone().filter(|_| self.tools.is_empty()) {
            Some(direct) => {
                self.direct_round = true;
                direct.begin(id, &self.shown);
                upstream::start(app.config, body, &self.handle, move |ev| match ev {
                    StreamEvent::Delta(piece) => direct.show(id, piece),
                    ev => tx.send((id, ev)).is_ok(),
                });
            }
            None => {
                upstream::start(app.config, body, &self.handle, move |ev| {
                    tx.send((id, ev)).is_ok()
                });
            }
        }
    }

    /// Takes one upstream event of this turn.
    pub(crate) fn on_event(&mut self, app: &Coach<'_>, ev: StreamEvent) -> Vec<Step> {
        // A direct round sends only its end or failure here, after its last piece.
        self.end_direct();
        match ev {
            StreamEvent::Delta(piece) if self.tools.is_empty() => {
                self.shown.push_str(&piece);
                vec![Step::Show(piece)]
            }
            StreamEvent::Delta(piece) => {
                self.held.push(piece);
                Vec::new()
            }
            StreamEvent::Finished(end) => self.on_round_end(app, end),
            StreamEvent::Failed(UpstreamError::Cancelled) => Vec::new(),
            StreamEvent::Failed(UpstreamError::ToolsRefused(status))
                if app.config.llm.tools == ToolsMode::Auto && !self.tools.is_empty() =>
            {
                log::warn!(
                    "the LLM upstream refused tools ({status}); not offering them for {} minutes",
                    BACK_OFF_SECS / 60
                );
                app.tools.back_off(app.clock.unix());
                self.tools.clear();
                self.held.clear();
                self.ask(app);
                Vec::new()
            }
            StreamEvent::Failed(why) => vec![self.fail(app, &why)],
        }
    }

    fn fail(&self, app: &Coach<'_>, why: &UpstreamError) -> Step {
        let (code, message, answer) = match why {
            // Not the model's failure: not counted as one.
            UpstreamError::OverQuota(m) => (
                "quota_exceeded",
                m.clone(),
                answer::finish_fallback(app, &self.question, &self.pending),
            ),
            _ => (
                "upstream_unavailable",
                answer::FAILED.to_string(),
                answer::finish_failed(app, &self.question, &self.pending, why),
            ),
        };
        Step::Failed {
            code,
            message,
            answer,
            tools_used: self.tools_used.clone(),
        }
    }

    fn prompt_chars(&self) -> usize {
        self.messages
            .iter()
            .map(|m| m["content"].as_str().map_or(0, |c| c.chars().count()))
            .sum()
    }

    fn on_round_end(&mut self, app: &Coach<'_>, end: RoundEnd) -> Vec<Step> {
        let held: String = self.held.concat();
        let written = held.chars().count()
            + end
                .tool_calls
                .iter()
                .map(|c| c.arguments.chars().count())
                .sum::<usize>();
        let usage = end
            .usage
            .unwrap_or_else(|| quota::estimate(self.prompt_chars(), written));
        self.total.prompt_tokens += usage.prompt_tokens;
        self.total.completion_tokens += usage.completion_tokens;
        if end.tool_calls.is_empty() || self.tools.is_empty() {
            // The final round: what was held back is the answer.
            let mut steps: Vec<Step> = std::mem::take(&mut self.held)
                .into_iter()
                .map(|p| {
                    self.shown.push_str(&p);
                    Step::Show(p)
                })
                .collect();
            answer::finish_streamed(
                app,
                &self.question,
                &self.pending,
                &self.shown,
                self.total,
                usage,
                !self.called,
            );
            steps.push(Step::Done {
                usage: self.total,
                tools_used: self.tools_used.clone(),
            });
            return steps;
        }
        self.held.clear();
        self.called = true;
        self.tool_rounds += 1;
        let mut steps = Vec::new();
        let results = self.run_calls(app, &end.tool_calls, &mut steps);
        self.messages.push(json!({
            "role": "assistant",
            "content": if held.is_empty() { Value::Null } else { Value::String(held) },
            "tool_calls": end.tool_calls.iter().map(|c| json!({
                "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })).collect::<Vec<_>>(),
        }));
        for (call, result) in end.tool_calls.iter().zip(&results) {
            self.messages.push(json!({
                "role": "tool", "tool_call_id": call.id, "content": result.to_string(),
            }));
        }
        let now = app.clock.now();
        let stored = app.db.write(|tx| {
            quota::record(tx, app.config, &self.question.user_id, usage, now)?;
            store_calls(
                tx,
                &self.question,
                self.tool_rounds,
                &end.tool_calls,
                &results,
                &crate::clock::iso(now),
            )
        });
        if let Err(e) = stored {
            log::error!("chat: could not store a tool round: {e:?}");
        }
        if self.handle.is_cancelled() {
            return steps;
        }
        match app
            .db
            .read(|c| quota::check(c, app.config, &self.question.user_id, now))
        {
            Ok(None) => {}
            Ok(Some(over)) => {
                let why = UpstreamError::OverQuota(format!(
                    "The daily token limit has been reached; it resets at {}",
                    over.resets_at
                ));
                steps.push(self.fail(app, &why));
                return steps;
            }
            Err(e) => log::error!("chat: checking the quota failed: {e:?}"),
        }
        if self.tool_rounds >= TOOL_ROUNDS || self.calls >= MAX_CALLS {
            self.tools.clear();
        }
        self.ask(app);
        steps
    }

    /// Runs a round's calls as the asking user, in order; their results, one per call.
    fn run_calls(
        &mut self,
        app: &Coach<'_>,
        calls: &[ToolCall],
        steps: &mut Vec<Step>,
    ) -> Vec<Value> {
        let offered: Vec<&str> = self
            .tools
            .iter()
            .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
            .collect();
        let who = caller(app, &self.question.user_id);
        let mut results = Vec::with_capacity(calls.len());
        // One status per tool and round, however many times it is called.
        let mut announced: Vec<&str> = Vec::new();
        for call in calls {
            if self.calls >= MAX_CALLS {
                results.push(json!({ "error": CALL_LIMIT }));
                continue;
            }
            self.calls += 1;
            if offered.contains(&call.name.as_str()) {
                if !self.tools_used.contains(&call.name) {
                    self.tools_used.push(call.name.clone());
                }
                if !announced.contains(&call.name.as_str()) {
                    announced.push(&call.name);
                    steps.push(Step::LookingUp(call.name.clone()));
                }
            }
            let result = app
                .db
                .read(|c| Ok(tools::call(c, &who, &call.name, &call.arguments)))
                .unwrap_or_else(|e| {
                    log::error!("chat: a tool call failed: {e:?}");
                    json!({"error": "the lookup failed"})
                });
            results.push(result);
        }
        results
    }
}

fn caller<'a>(app: &'a Coach<'_>, user: &'a str) -> Caller<'a> {
    let tz = &app.config.app_timezone;
    Caller {
        user,
        today: app.clock.now().to_zoned(tz.clone()).date(),
        tz,
        catalog: app.catalog,
    }
}

/// Keeps a round's calls and results, apart from the conversation's messages.
fn store_calls(
    tx: &Transaction<'_>,
    q: &Question,
    round: u32,
    calls: &[ToolCall],
    results: &[Value],
    now: &str,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO chat_tool_calls (id, user_id, session_id, round, call_id, name, arguments,
             result, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (call, result) in calls.iter().zip(results) {
        stmt.execute(params![
            crate::random::uuid(),
            q.user_id,
            q.session_id,
            round,
            call.id,
            call.name,
            call.arguments,
            result.to_string(),
            now
        ])?;
    }
    Ok(())
}
