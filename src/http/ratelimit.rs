//! The request-rate policy of API.md "Cross-cutting": which quotas a request counts against,
//! and on which key. The counters themselves are `crate::limiter`.

use super::request::Req;
use super::router::Class;
use super::server::State;
use crate::config::Config;
use crate::error::Error;
use crate::limiter::{Quota, RateLimiter, Refusal, ip_key};

/// The key of a signed-in user's counters.
pub(crate) fn user_key(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The per-minute chat limit on `key` (a user's, or a client address's when the request has
/// no valid token). The chat routes and the chat socket both call this with `user_key`, so a
/// user has one chat bucket whichever way the questions come.
pub(crate) fn chat_quota(
    limiter: &RateLimiter,
    config: &Config,
    key: &str,
    now: i64,
) -> Result<(), Refusal> {
    if !config.rate_limit.enabled {
        return Ok(());
    }
    let q = [Quota {
        limit: config.rate_limit.chat_per_minute,
        window: 60,
    }];
    limiter.check(&format!("chat:{key}"), &q, now)
}

fn refused(r: Refusal) -> Error {
    Error::RateLimited {
        limit: r.limit,
        retry_after: r.retry_after as u64,
        reset_at: r.reset_at,
    }
}

/// The checks that run after routing and before the handler: the request-rate limits, per
/// user when the bearer token is valid, else per client address.
pub(crate) fn before_handler<S: State>(state: &S, class: Class, req: &Req) -> Result<(), Error> {
    let c = state.config();
    let limiter = state.limiter();
    let now = state.now();
    if class == Class::Sensitive {
        // Always on: these answers tell whether an account exists.
        let key = format!("sensitive:{}", ip_key(req.client_ip));
        let q = [Quota {
            limit: 10,
            window: 60,
        }];
        limiter.check(&key, &q, now).map_err(refused)?;
    }
    if !c.rate_limit.enabled || class == Class::Exempt {
        return Ok(());
    }
    let key = state
        .bearer_user(req)
        .map(|id| user_key(&id))
        .unwrap_or_else(|| ip_key(req.client_ip));
    let quotas = [
        Quota {
            limit: c.rate_limit.per_minute,
            window: 60,
        },
        Quota {
            limit: c.rate_limit.per_hour,
            window: 3600,
        },
        Quota {
            limit: c.rate_limit.per_day,
            window: 86_400,
        },
    ];
    limiter.check(&key, &quotas, now).map_err(refused)?;
    if class == Class::Chat {
        chat_quota(limiter, c, &key, now).map_err(refused)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use super::*;
    use crate::metrics::Metrics;

    /// A state with no application behind it: the policy needs only the trait.
    struct Fake {
        config: Config,
        metrics: Metrics,
        limiter: RateLimiter,
        user: Option<&'static str>,
    }

    impl State for Fake {
        fn config(&self) -> &Config {
            &self.config
        }
        fn metrics(&self) -> &Metrics {
            &self.metrics
        }
        fn is_stopping(&self) -> bool {
            false
        }
        fn fail(&self, _why: String) {}
        fn limiter(&self) -> &RateLimiter {
            &self.limiter
        }
        fn now(&self) -> i64 {
            1_000_000
        }
        fn bearer_user(&self, _req: &Req) -> Option<String> {
            self.user.map(String::from)
        }
    }

    fn fake(user: Option<&'static str>, chat_per_minute: &str) -> Fake {
        let vars: HashMap<String, String> = [
            ("RATE_LIMIT_ENABLED", "true"),
            ("CHAT_RATE_LIMIT_PER_MINUTE", chat_per_minute),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Fake {
            config: Config::from_map(&vars).expect("config"),
            metrics: Metrics::new(),
            limiter: RateLimiter::default(),
            user,
        }
    }

    fn req() -> Req {
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        Req {
            method: "POST".into(),
            path: "/api/v1/chat/message".into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            client_ip: ip,
            peer: ip,
            request_id: "r".into(),
            params: Vec::new(),
        }
    }

    #[test]
    fn http_chat_and_the_chat_socket_share_one_bucket() {
        let s = fake(Some("u1"), "2");
        assert!(before_handler(&s, Class::Chat, &req()).is_ok());
        // The socket's question, on the key it uses.
        assert!(chat_quota(&s.limiter, &s.config, &user_key("u1"), s.now()).is_ok());
        let e = before_handler(&s, Class::Chat, &req()).expect_err("third chat message");
        assert_eq!(e.status(), 429);
        assert!(chat_quota(&s.limiter, &s.config, &user_key("u1"), s.now()).is_err());
        // Another user, and the API routes, are not touched by the chat bucket.
        assert!(chat_quota(&s.limiter, &s.config, &user_key("u2"), s.now()).is_ok());
        assert!(before_handler(&s, Class::Api, &req()).is_ok());
    }

    #[test]
    fn without_a_valid_token_the_client_address_is_the_key() {
        let s = fake(None, "1");
        assert!(before_handler(&s, Class::Chat, &req()).is_ok());
        assert!(before_handler(&s, Class::Chat, &req()).is_err());
        let key = ip_key(req().client_ip);
        assert!(chat_quota(&s.limiter, &s.config, &key, s.now()).is_err());
        assert!(chat_quota(&s.limiter, &s.config, &user_key("u1"), s.now()).is_ok());
    }
}
