//! A first walk through the coach without an API key: the fallback answers from the numbers.

use crate::common;

use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

pub fn token(t: &TestApp, email: &str) -> String {
    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"email": email, "password": "Secret#123", "full_name": "Chat User"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

pub fn connect(t: &TestApp, path: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(t.ws).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (ws, _) =
        tungstenite::client::client(format!("ws://{}{}", t.ws, path), stream).expect("upgrade");
    ws
}

pub fn next_json(ws: &mut WebSocket<TcpStream>) -> Value {
    loop {
        match ws.read().expect("a frame") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json frame"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

#[test]
fn without_a_key_the_coach_answers_from_the_users_numbers() {
    let t = spawn_app();
    let tok = token(&t, "c@example.com");
    let r = send_json(
        t.http,
        "POST",
        "/api/v1/transactions",
        Some(&tok),
        &json!({"type": "income", "category": "salary", "amount": 1000, "label": "pay", "transaction_date": t.app().clock.iso()}),
    );
    assert_eq!(r.status, 201);

    let mut ws = connect(&t, &format!("/ws/chat?token={tok}"));
    let hello = next_json(&mut ws);
    assert_eq!(hello["type"], "connected");
    let session = hello["session_id"].as_str().expect("session").to_string();
    ws.send(Message::text(json!({"type": "ping"}).to_string()))
        .expect("send");
    assert_eq!(next_json(&mut ws)["type"], "pong");
    ws.send(Message::text(
        json!({"type": "message", "content": "How am I doing?"}).to_string(),
    ))
    .expect("send");
    let err = next_json(&mut ws);
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "not_configured");
    let answer = next_json(&mut ws);
    assert_eq!(answer["done"], true);
    assert_eq!(answer["fallback"], true);
    assert_eq!(answer["session_id"], session.as_str());
    assert!(
        answer["content"]
            .as_str()
            .expect("text")
            .contains("income ₹1,000.00"),
        "{answer}"
    );

    let r = send_json(
        t.http,
        "POST",
        "/api/v1/chat/message",
        Some(&tok),
        &json!({"message": "hi"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["fallback"], true);

    let s = send_json(
        t.http,
        "POST",
        "/api/v1/chat/message/stream",
        Some(&tok),
        &json!({"message": "hi", "session_id": null}),
    );
    assert_eq!(s.status, 200);
    let events: Vec<Value> = s
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event"))
        .collect();
    assert_eq!(events[0]["type"], "session_id");
    assert_eq!(events[1]["type"], "error");
    assert_eq!(events[2]["type"], "token");
    assert_eq!(events.last().expect("done")["type"], "done");

    let sessions = get_auth(t.http, "/api/v1/chat/sessions", &tok).json();
    assert_eq!(sessions["total"], 3);
    let msgs = get_auth(
        t.http,
        &format!("/api/v1/chat/sessions/{session}/messages"),
        &tok,
    )
    .json();
    assert_eq!(msgs["total"], 2);
    assert_eq!(msgs["messages"][0]["role"], "user");
    assert_eq!(msgs["messages"][0]["content"], "How am I doing?");
}
