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
    pub(crate) started: Instant,
}

pub(crate) fn prepare(app: &Coach<'_>, q: &Question) -> Result<Plan> {
    let now = app.clock.now();
    let tz = &app.config.app_timezone;
    let ctx = app
        .db
        .read(|c| context::load(c, app.catalog, tz, now, &q.user_id, &q.full_name))?;
    let mut recent = app.db.read(|c| history::recent(c, &q.session_id))?;
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
    app.db.write(|tx| {
        history::save_message(
            tx,
            &q.user_id,
            &q.session_id,
            &Saved::plain("user", &q.text),
            &now_iso,
        )
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
    if let Some(over) = app
        .db
        .read(|c| quota::check(c, app.config, &q.user_id, now))?
    {
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
    let ms = p.started.elapsed().as_millis() as i64;
    let now = app.clock.now();
    let saved = app.db.write(|tx| {
        let cost = quota::record(tx, app.config, &q.user_id, usage, now)?;
        let m = Saved {
            role: "assistant",
            content,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost_micros: cost,
            cached: false,
            fallback: false,
            response_ms: Some(ms),
        };
        history::save_message(tx, &q.user_id, &q.session_id, &m, &crate::clock::iso(now))
    });
    if let Err(e) = saved {
        log::error!("could not save a chat answer and its usage: {e:?}");
    }
    usage
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
    let answer = context::fallback_answer(&p.numbers);
    save_answer(app, q, plain(&answer, false, true));
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
    let handle = upstream::start(app.config, p.messages.clone(), move |ev| {
        tx.send(ev).is_ok()
    });
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
