//! One question, answered: shared by the WebSocket, POST /chat/message and its SSE stream.
//! `prepare` saves the question and decides how to answer: from the cache or with a fallback
//! (both saved there and then), or from the model. A model answer ends in `finish_streamed`
//! (cached, counted, saved), `finish_failed` (the fallback, saved) or `finish_cancelled`;
//! the transports only carry the pieces.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::channel;
use std::time::Instant;

use super::context::{self, Numbers};
use super::history::{self, Saved};
use super::quota;
use super::toolloop::{Step, ToolSwitch, Turn};
use super::upstream::{ChatMessage, UpstreamError, Usage};
use crate::budget::catalog::Catalog;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::error::Result;
use crate::metrics::Metrics;

/// What answering uses of the shared state, and nothing else: the transports build it from
/// `App` (`chat::coach`).
pub(crate) struct Coach<'a> {
    pub(crate) db: &'a Db,
    pub(crate) config: &'a Config,
    pub(crate) clock: &'a Clock,
    pub(crate) catalog: &'a Catalog,
    /// Model answers by cache key, for `QUERY_CACHE_TTL`.
    pub(crate) answers: &'a moka::sync::Cache<String, Arc<String>>,
    pub(crate) metrics: &'a Metrics,
    /// Whether tools are offered (`OPENAI_TOOLS` and its back-off).
    pub(crate) tools: &'a ToolSwitch,
}

/// The error message every client shows when the model fails.
pub(crate) const FAILED: &str = "Failed to generate response. Please try again.";

#[derive(Clone)]
pub(crate) struct Question {
    pub(crate) user_id: String,
    pub(crate) full_name: String,
    pub(crate) session_id: String,
    pub(crate) text: String,
    /// History the client sent itself (HTTP), used when the session has none.
    pub(crate) client_history: Vec<ChatMessage>,
}

/// How a question is answered. `Cached` and `Fallback` are already saved.
pub(crate) enum Plan {
    Cached(Arc<String>),
    /// No model call: `code` is `not_configured` or `quota_exceeded`.
    Fallback {
        code: &'static str,
        message: String,
        answer: String,
    },
    Stream(Pending),
}

/// Everything needed to finish a streamed answer.
pub(crate) struct Pending {
    /// The request's messages; `Turn::start` takes them.
    pub(crate) messages: Vec<ChatMessage>,
    pub(crate) cache_key: String,
    pub(crate) numbers: Numbers,
    pub(crate) started: Instant,
}

pub(crate) fn prepare(app: &Coach<'_>, q: &Question) -> Result<Plan> {
    let now = app.clock.now();
    let tz = &app.config.app_timezone;
    // One checkout of a reader for the three reads: a burst of questions queues for the pool,
    // and each checkout is another turn in that queue.
    let (ctx, mut recent, over) = app.db.read(|c| {
        Ok((
            context::load(c, app.catalog, tz, now, &q.user_id, &q.full_name)?,
            history::recent(c, &q.session_id)?,
            quota::check(c, app.config, &q.user_id, now)?,
        ))
    })?;
    if recent.is_empty() {
        let n = q
            .client_history
            .len()
            .saturating_sub(history::CONTEXT_MESSAGES as usize);
        recent = q.client_history[n..].to_vec();
    }
    let system = context::system_prompt(&app.config.app_name, &ctx);
    let key = context::cache_key(&q.user_id, &app.config.llm.model, &q.text, &system, &recent);
    let now_iso = crate::clock::iso(now);
    // Group-committed: 1,000 questions arriving together queued one by one for the writer's
    // mutex, with the cores 40% idle while they waited for each hand-over to be scheduled
    // (`benches/chat.rs` with `BENCH_FIRST_TOKEN_MS=1000`, `perf -a`).
    let (user, session, text) = (q.user_id.clone(), q.session_id.clone(), q.text.clone());
    app.db.write_in_group(move |tx| {
        history::save_message(tx, &user, &session, &Saved::plain("user", &text), &now_iso)
    })?;
    if app.config.cache.enabled
        && let Some(hit) = app.answers.get(&key)
    {
        app.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
        save_answer(app, q, plain(&hit, true, false));
        return Ok(Plan::Cached(hit));
    }
    app.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
    let fallback = |code, message| {
        let answer = context::fallback_answer(&ctx.numbers);
        save_answer(app, q, plain(&answer, false, true));
        Ok(Plan::Fallback {
            code,
            message,
            answer,
        })
    };
    if app.config.llm.api_key.is_none() {
        return fallback(
            "not_configured",
            "The AI coach is not configured on this server".into(),
        );
    }
    if let Some(over) = over {
        return fallback(
            "quota_exceeded",
            format!(
                "The {} daily token limit has been reached; it resets at {}",
                if over.scope == "user" {
                    "personal"
                } else {
                    "service's"
                },
                over.resets_at
            ),
        );
    }
    let mut messages = vec![ChatMessage {
        role: "system".into(),
        content: system,
    }];
    messages.extend(recent);
    messages.push(ChatMessage {
        role: "user".into(),
        content: q.text.clone(),
    });
    Ok(Plan::Stream(Pending {
        messages,
        cache_key: key,
        numbers: ctx.numbers,
        started: Instant::now(),
    }))
}

/// Saves an assistant message (`saved.role` is ignored: always "assistant").
fn save_answer(app: &Coach<'_>, q: &Question, saved: Saved<'_>) {
    let now = app.clock.iso();
    let saved = Saved {
        role: "assistant",
        ..saved
    };
    if let Err(e) = app
        .db
        .write(|tx| history::save_message(tx, &q.user_id, &q.session_id, &saved, &now))
    {
        log::error!("could not save a chat answer: {e:?}");
    }
}

fn plain(content: &str, cached: bool, fallback: bool) -> Saved<'_> {
    Saved {
        cached,
        fallback,
        ..Saved::plain("assistant", content)
    }
}

/// A complete model answer: cached (unless it used tools: `cacheable` false) and counted in
/// memory, then the last round's usage and the message saved in one write transaction (one
/// trip through the writer per answer; earlier rounds were counted as they ended). Call
/// before the final frame, so whoever sees the frame finds the answer in the history.
/// `usage` is the whole answer's, `last_round` the part not counted yet.
pub(crate) fn finish_streamed(
    app: &Coach<'_>,
    q: &Question,
    p: &Pending,
    content: &str,
    usage: Usage,
    last_round: Usage,
    cacheable: bool,
) {
    if cacheable && app.config.cache.enabled && !content.is_empty() {
        app.answers
            .insert(p.cache_key.clone(), Arc::new(content.to_string()));
    }
    app.metrics.llm_requests.fetch_add(1, Ordering::Relaxed);
    app.metrics.llm_tokens.fetch_add(
        usage.prompt_tokens + usage.completion_tokens,
        Ordering::Relaxed,
    );
    let ms = p.started.elapsed().as_millis() as i64;
    let now = app.clock.now();
    let last_cost = quota::cost_micros(app.config, last_round);
    let cost = quota::cost_micros(app.config, usage);
    let (user, session, content) = (q.user_id.clone(), q.session_id.clone(), content.to_string());
    // Group-committed like the question: 1,000 answers ending together queued for the
    // writer's mutex, and their final frames with them.
    let saved = app.db.write_in_group(move |tx| {
        quota::record_cost(tx, &user, last_round, last_cost, now)?;
        let m = Saved {
            role: "assistant",
            content: &content,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost_micros: cost,
            cached: false,
            fallback: false,
            response_ms: Some(ms),
        };
        history::save_message(tx, &user, &session, &m, &crate::clock::iso(now))
    });
    if let Err(e) = saved {
        log::error!("could not save a chat answer and its usage: {e:?}");
    }
}

/// What the user saw before cancelling, if anything; not cached, no usage known.
pub(crate) fn finish_cancelled(app: &Coach<'_>, q: &Question, content: &str) {
    if !content.is_empty() {
        save_answer(app, q, plain(content, false, false));
    }
}

/// A model failure: counted, and the fallback built from the numbers of this answer, saved
/// (the user sees it) but never cached.
pub(crate) fn finish_failed(
    app: &Coach<'_>,
    q: &Question,
    p: &Pending,
    why: &UpstreamError,
) -> String {
    app.metrics.llm_errors.fetch_add(1, Ordering::Relaxed);
    log::warn!("LLM answer failed: {why}");
    finish_fallback(app, q, p)
}

/// The fallback built from the numbers of this answer, saved but never cached: for a model
/// failure, or a quota used up between two rounds.
pub(crate) fn finish_fallback(app: &Coach<'_>, q: &Question, p: &Pending) -> String {
    let answer = context::fallback_answer(&p.numbers);
    save_answer(app, q, plain(&answer, false, true));
    answer
}

/// How a streamed answer ended, for HTTP.
pub(crate) struct Ended {
    pub(crate) text: String,
    /// Prompt + completion tokens of every round, when the answer completed.
    pub(crate) tokens: Option<u64>,
    /// The fallback, because the model failed: the error event's message.
    pub(crate) failed: Option<String>,
    pub(crate) tools_used: Vec<String>,
}

/// Runs a streamed answer to its end on this thread (the tool loop included), calling
/// `on_piece` for every piece of the final answer (false: the reader is gone, so the answer
/// is cancelled).
pub(crate) fn run_to_end(
    app: &Coach<'_>,
    q: Question,
    p: Pending,
    mut on_piece: impl FnMut(&str) -> bool,
) -> Ended {
    let (tx, rx) = channel();
    let mut turn = Turn::start(app, q, p, 0, tx, None);
    for (_, ev) in rx.iter() {
        for step in turn.on_event(app, ev) {
            match step {
                Step::Show(piece) => {
                    if !on_piece(&piece) {
                        turn.cancel();
                        finish_cancelled(app, &turn.question, &turn.shown);
                        return Ended {
                            text: turn.shown,
                            tokens: None,
                            failed: None,
                            tools_used: Vec::new(),
                        };
                    }
                }
                Step::LookingUp(_) => {}
                Step::Done { usage, tools_used } => {
                    return Ended {
                        text: turn.shown,
                        tokens: Some(usage.prompt_tokens + usage.completion_tokens),
                        failed: None,
                        tools_used,
                    };
                }
                Step::Failed {
                    message,
                    answer,
                    tools_used,
                    ..
                } => {
                    return Ended {
                        text: answer,
                        tokens: None,
                        failed: Some(message),
                        tools_used,
                    };
                }
            }
        }
    }
    // Unreachable while the turn holds a sender; kept so a change there cannot hang a request.
    let text = finish_failed(app, &turn.question, &turn.pending, &UpstreamError::Dropped);
    Ended {
        text,
        tokens: None,
        failed: Some(FAILED.to_string()),
        tools_used: Vec::new(),
    }
}
