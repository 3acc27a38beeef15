//! `/ws/notifications`: the user's in-process events (`crate::notify::hub`) as they happen, a
//! heartbeat, and answers to `ping` and `authenticate`.

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::frames::{ClientMessage, ServerFrame};
use super::sessions::Live;
use super::{Ended, Socket, auth};
use crate::app::App;
use crate::auth::AuthUser;

/// How long the loop waits for an event before reading the socket.
const NOTIFY_WAIT: Duration = Duration::from_millis(250);

/// What a notifications socket answers to a client's text frame: `authenticate` renews the
/// socket's session, `ping` gets a `pong` (without a timestamp), anything else an error.
fn reply(app: &App, live: &Live, text: &str) -> Result<ServerFrame, Ended> {
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Authenticate { token }) => {
            auth::reauthenticate(app, live, token.as_deref()).map(|(_, reply)| reply)
        }
        Ok(ClientMessage::Ping) => Ok(ServerFrame::Pong { timestamp: None }),
        Ok(other) => Ok(ServerFrame::unknown_type(Some(other.kind()))),
        Err(frame) => Ok(frame),
    }
}

pub(crate) fn serve(app: &App, mut sock: Socket, user: &AuthUser, live: &Live) -> Ended {
    let ended = pump(app, &mut sock, user, live);
    sock.close_for(&ended);
    ended
}

fn pump(app: &App, sock: &mut Socket, user: &AuthUser, live: &Live) -> Ended {
    let rx = app.events.subscribe(&user.user.id);
    let connected = ServerFrame::Connected {
        message: "Connected to notifications",
        timestamp: app.clock.iso(),
        session_id: None,
    };
    if sock.send(&connected).is_err() {
        return Ended::Gone;
    }
    let mut next_beat = Instant::now() + app.config.ws.heartbeat_interval;
    loop {
        if app.is_stopping() {
            return Ended::ServerStopping;
        }
        if let Some(e) = live.ending() {
            return e;
        }
        match rx.recv_timeout(NOTIFY_WAIT) {
            Ok(event) => {
                if sock.send(&ServerFrame::Event(event)).is_err() {
                    return Ended::Gone;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + app.config.ws.heartbeat_interval;
            let beat = ServerFrame::Heartbeat {
                timestamp: app.clock.iso(),
            };
            if sock.send(&beat).is_err() {
                return Ended::Gone;
            }
        }
        loop {
            match sock.poll() {
                Ok(Some(Message::Text(t))) => match reply(app, live, t.as_str()) {
                    Ok(frame) => {
                        if sock.send(&frame).is_err() {
                            return Ended::Gone;
                        }
                    }
                    Err(e) => return e,
                },
                // Binary frames are ignored here, as they always were.
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return e,
            }
        }
    }
}
