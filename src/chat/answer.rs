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
use super::upstream::{self, ChatMessage, StreamEvent, UpstreamError, Usage};
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
}

/// The error message every client shows when the model fails.
pub(crate) const FAILED: &str = "Failed to generate response. Please try again.";

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
    pub(crate) messages: Vec<ChatMessage>,
    pub(crate) cache_key: String,
    pub(crate) numbers: Numbers,
    pub(crate) prompt_chars: usize,
    /// When the question was asked (its `created_at`, saved by `start_stream`).
    pub(crate) asked_at: String,
    pub(crate) started: Instant,
}

/// Decides how to answer `q`. Everything it reads comes from one read on one pooled
/// connection, and a model answer reaches the upstream before anything is written: under a
/// burst of 1,000 questions the writer and the pool are queues, and the question's own write
/// waited its turn in front of the upstream call (benches/chat.rs: questions reached the
/// upstream over 3 s). `start_stream` starts the call, then saves the question.
pub(crate) fn prepare(app: &Coach<'_>, q: &Question) -> Result<Plan> {
    let now = app.clock.now();
    let tz = &app.config.app_timezone;
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
    let asked_at = crate::clock::iso(now);
    if app.config.cache.enabled
        && let Some(hit) = app.answers.get(&key)
    {
        app.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
        save_question(app, q, &asked_at, Some(plain(&hit, true, false)))?;
        return Ok(Plan::Cached(hit));
    }
    app.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
    let fallback = |code, message| {
        let answer = context::fallback_answer(&ctx.numbers);
        save_question(app, q, &asked_at, Some(plain(&answer, false, true)))?;
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
    let prompt_chars = messages.iter().map(|m| m.content.chars().count()).sum();
    Ok(Plan::Stream(Pending {
        messages,
        cache_key: key,
        numbers: ctx.numbers,
        prompt_chars,
        asked_at,
        started: Instant::now(),
    }))
}

/// The question, and the answer when it is already known, saved in one write.
fn save_question(
    app: &Coach<'_>,
    q: &Question,
    asked_at: &str,
    answer: Option<Saved<'_>>,
) -> Result<()> {
    app.db.write(|tx| {
        history::save_message(
            tx,
            &q.user_id,
            &q.session_id,
            &Saved::plain("user", &q.text),
            asked_at,
        )?;
        if let Some(a) = answer {
            let a = Saved {
                role: "assistant",
                ..a
            };
            history::save_message(
                tx,
                &q.user_id,
                &q.session_id,
                &a,
                &crate::clock::iso(app.clock.now()),
            )?;
        }
        Ok(())
    })
}

/// Starts the model's answer to a `Plan::Stream`, then queues the question's save with the
/// group-commit writer, without waiting: the question reaches the upstream first, and its
/// save rides one shared transaction with the others of a burst. Every later write about
/// this answer goes through the same queue (`queue_answer`), so it lands after the question.
pub(crate) fn start_stream(
    app: &Coach<'_>,
    q: &Question,
    p: &Pending,
    sink: impl FnMut(StreamEvent) -> bool + Send + 'static,
) -> upstream::StreamHandle {
    let handle = upstream::start(app.config, p.messages.clone(), sink);
    let (user, session, text, at) = (
        q.user_id.clone(),
        q.session_id.clone(),
        q.text.clone(),
        p.asked_at.clone(),
    );
    // Not waited for: a failure is logged by the job itself.
    let _ = app.db.write_grouped(move |tx| {
        let saved = history::save_message(tx, &user, &session, &Saved::plain("user", &text), &at);
        if let Err(e) = &saved {
            log::error!("could not save a chat question: {e:?}");
        }
        saved
    });
    handle
}

/// An answer to save, owned, for the group-commit writer.
struct Answered {
    content: String,
    /// Counted in the day's usage (a model answer), with `usage` and `cost_micros`.
    counted: bool,
    usage: Usage,
    cost_micros: i64,
    cached: bool,
    fallback: bool,
    response_ms: Option<i64>,
}

/// Saves the answer (and its usage, when it has a cost) through the same queue as the
/// question, and waits until it committed: the final frame goes out only after that.
fn queue_answer(app: &Coach<'_>, q: &Question, a: Answered, now: jiff::Timestamp) {
    let (user, session) = (q.user_id.clone(), q.session_id.clone());
    let done = app.db.write_grouped(move |tx| {
        if a.counted {
            quota::add(tx, &user, a.usage, a.cost_micros, now)?;
        }
        let m = Saved {
            role: "assistant",
            content: &a.content,
            prompt_tokens: a.usage.prompt_tokens,
            completion_tokens: a.usage.completion_tokens,
            cost_micros: a.cost_micros,
            cached: a.cached,
            fallback: a.fallback,
            response_ms: a.response_ms,
        };
        history::save_message(tx, &user, &session, &m, &crate::clock::iso(now))
    });
    match done.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::error!("could not save a chat answer: {e:?}"),
        Err(_) => log::error!("could not save a chat answer: the writer stopped"),
    }
}

fn plain(content: &str, cached: bool, fallback: bool) -> Saved<'_> {
    Saved {
        cached,
        fallback,
        ..Saved::plain("assistant", content)
    }
}

/// A complete model answer: cached and counted in memory, then its usage and the message
/// saved in one write transaction (one trip through the writer per answer). Call before the
/// final frame, so whoever sees the frame finds the answer in the history. Returns the usage
/// the upstream reported, or an estimate when it sent none.
pub(crate) fn finish_streamed(
    app: &Coach<'_>,
    q: &Question,
    p: &Pending,
    content: &str,
    reported: Option<Usage>,
) -> Usage {
    let usage =
        reported.unwrap_or_else(|| quota::estimate(p.prompt_chars, content.chars().count()));
    if app.config.cache.enabled && !content.is_empty() {
        app.answers
            .insert(p.cache_key.clone(), Arc::new(content.to_string()));
    }
    app.metrics.llm_requests.fetch_add(1, Ordering::Relaxed);
    app.metrics.llm_tokens.fetch_add(
        usage.prompt_tokens + usage.completion_tokens,
        Ordering::Relaxed,
    );
    let answered = Answered {
        content: content.to_string(),
        counted: true,
        usage,
        cost_micros: quota::cost_micros(app.config, usage),
        cached: false,
        fallback: false,
        response_ms: Some(p.started.elapsed().as_millis() as i64),
    };
    queue_answer(app, q, answered, app.clock.now());
    usage
}

/// An answer that cost no counted tokens (cancelled or the fallback), after the question.
fn queue_plain(app: &Coach<'_>, q: &Question, content: &str, fallback: bool) {
    let answered = Answered {
        content: content.to_string(),
        counted: false,
        usage: Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
        },
        cost_micros: 0,
        cached: false,
        fallback,
        response_ms: None,
    };
    queue_answer(app, q, answered, app.clock.now());
}

/// What the user saw before cancelling, if anything; not cached, no usage known.
pub(crate) fn finish_cancelled(app: &Coach<'_>, q: &Question, content: &str) {
    if !content.is_empty() {
        queue_plain(app, q, content, false);
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
    let answer = context::fallback_answer(&p.numbers);
    queue_plain(app, q, &answer, true);
    answer
}

/// Runs a streamed answer to its end on this thread, calling `on_piece` for every piece
/// (false: the reader is gone, so the answer is cancelled). Returns the whole answer, its
/// tokens when it completed, and whether it is the fallback because the model failed.
pub(crate) fn run_to_end(
    app: &Coach<'_>,
    q: &Question,
    p: &Pending,
    mut on_piece: impl FnMut(&str) -> bool,
) -> (String, Option<u64>, bool) {
    let (tx, rx) = channel();
    let handle = start_stream(app, q, p, move |ev| tx.send(ev).is_ok());
    let mut content = String::new();
    for ev in rx.iter() {
        match ev {
            StreamEvent::Delta(piece) => {
                content.push_str(&piece);
                if !on_piece(&piece) {
                    handle.cancel();
                    finish_cancelled(app, q, &content);
                    return (content, None, false);
                }
            }
            StreamEvent::Finished(reported) => {
                let u = finish_streamed(app, q, p, &content, reported);
                return (content, Some(u.prompt_tokens + u.completion_tokens), false);
            }
            StreamEvent::Failed(why) => {
                return (finish_failed(app, q, p, &why), None, true);
            }
        }
    }
    (
        finish_failed(app, q, p, &UpstreamError::Dropped),
        None,
        true,
    )
}
