//! The Baidu Face Detect v3 compatibility end to end: the OAuth step, the detect endpoint in
//! Baidu's request and answer shapes, and Baidu's error codes for every failure. Tests that
//! need a face use the dev images (../shared/evaldata) and skip without them; the token flow
//! and every error path use synthetic inputs and always run.

mod common;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::*;
use facelens_server::baidu::token::{ACCESS_TTL, Kind, mint};
use facelens_store::secret::hash_key;
use facelens_store::{ApiKey, ApiState, KeyStatus, NewKey, unix_now};
use serde_json::{Value, json};

const DETECT: &str = "/rest/2.0/face/v3/detect";

async fn key_record(s: &TestServer, key: &str) -> ApiKey {
    s.store.find_key(key).await.expect("find").expect("key")
}

/// `GET /oauth/2.0/token` the way the SDKs do it; returns the status and the body.
async fn token_get(s: &TestServer, params: &[(&str, &str)]) -> (u16, Value) {
    let r = s
        .client
        .get(s.url("/oauth/2.0/token"))
        .query(params)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON"))
}

async fn access_token(s: &TestServer, key: &str) -> String {
    let id = key_record(s, key).await.id.to_string();
    let (status, v) = token_get(
        s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", key),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// POST a JSON body to the detect endpoint with this access token; checks Baidu's transport
/// rules (HTTP 200, JSON, the envelope's members) and returns the body.
async fn detect(s: &TestServer, token: &str, body: Value) -> Value {
    let r = s
        .client
        .post(s.url(DETECT))
        .query(&[("access_token", token)])
        .json(&body)
        .send()
        .await
        .expect("send");
    baidu_body(r).await
}

async fn baidu_body(r: reqwest::Response) -> Value {
    assert_eq!(
        r.status(),
        200,
        "Baidu answers 200 with the code in the body"
    );
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.expect("JSON");
    for k in ["error_code", "error_msg", "log_id", "timestamp", "cached"] {
        assert!(v.get(k).is_some(), "envelope lacks {k}: {v}");
    }
    assert!(v["log_id"].as_u64().is_some_and(|n| n < 1 << 53), "{v}");
    assert!(v["timestamp"].as_i64().is_some_and(|t| t > 1_600_000_000));
    assert_eq!(v["cached"], 0);
    if v["error_code"] != 0 {
        assert!(v["result"].is_null(), "result is null on errors: {v}");
    }
    v
}

/// OAuth request fields, and the expected status, `error` and `error_description`.
type OauthCase<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);

fn bcode(v: &Value) -> u64 {
    v["error_code"].as_u64().expect("error_code")
}

#[tokio::test]
async fn oauth_token_flow() {
    let s = start(|_| {}).await;
    let rec = key_record(&s, &s.key).await;
    let id_text = rec.id.to_string();
    let id: &str = &id_text;
    let key: &str = &s.key;

    // Good: by id (GET, as the SDKs do) and by name (POST form).
    let (status, v) = token_get(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", key),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let access = v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert!(access.starts_with("24."), "{access}");
    assert!(!access.contains(&s.key), "the token does not carry the key");
    assert_eq!(v["expires_in"], 2_592_000);
    let scope = v["scope"].as_str().expect("scope");
    assert!(scope.split(' ').any(|x| x == "brain_all_scope"), "{scope}");
    for k in ["refresh_token", "session_key", "session_secret"] {
        assert!(v[k].as_str().is_some_and(|x| !x.is_empty()), "{k}: {v}");
    }
    let refresh = v["refresh_token"].as_str().expect("refresh").to_string();
    let r = s
        .client
        .post(s.url("/oauth/2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "test"),
            ("client_secret", key),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);

    // The token works on the detect endpoint (a flat image: no face, 222202, counted).
    let flat = b64(&flat_png(64, 64));
    let body = json!({"image": flat, "image_type": "BASE64"});
    assert_eq!(bcode(&detect(&s, &access, body.clone()).await), 222202);
    // So does the Facelens key itself.
    assert_eq!(bcode(&detect(&s, &s.key, body.clone()).await), 222202);

    // Refused: wrong secret, wrong client id, wrong or missing grant type, missing fields.
    let other_secret = "0".repeat(32);
    let cases: Vec<OauthCase> = vec![
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", other_secret.as_str()),
            ],
            401,
            "invalid_client",
            "Client authentication failed",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "someone-else"),
                ("client_secret", key),
            ],
            401,
            "invalid_client",
            "unknown client id",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", id),
                ("client_secret", key),
            ],
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported",
        ),
        (
            vec![("client_id", id), ("client_secret", key)],
            400,
            "invalid_request",
            "missing grant_type",
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_id", id)],
            400,
            "invalid_request",
            "missing client_id or client_secret",
        ),
    ];
    for (params, status, error, description) in cases {
        let (got, v) = token_get(&s, &params).await;
        assert_eq!(got, status, "{params:?}: {v}");
        assert_eq!(v["error"], error, "{v}");
        assert_eq!(v["error_description"], description, "{v}");
        assert!(v.get("access_token").is_none());
    }

    // Refresh: a new access token that works; a refresh token is not an access token.
    let (status, v) = token_get(
        &s,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let renewed = v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    assert_eq!(bcode(&detect(&s, &renewed, body.clone()).await), 222202);
    let v = detect(&s, &refresh, body.clone()).await;
    assert_eq!(bcode(&v), 110);
    assert_eq!(v["error_msg"], "Access token invalid or no longer valid");
    let (status, v) = token_get(
        &s,
        &[("grant_type", "refresh_token"), ("refresh_token", &access)],
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));

    // Tampered: another key id, another expiry, another MAC: all 110.
    let parts: Vec<&str> = access.split('.').collect();
    let later = (parts[3].parse::<i64>().expect("expiry") + 1000).to_string();
    let flipped_mac: String = parts[1]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == '0' { '1' } else { '0' }
            } else {
                c
            }
        })
        .collect();
    for bad in [
        [parts[0], parts[1], parts[2], parts[3], "999"].join("."),
        [parts[0], parts[1], parts[2], &later, parts[4]].join("."),
        [parts[0], &flipped_mac, parts[2], parts[3], parts[4]].join("."),
        "24.nonsense".to_string(),
    ] {
        let v = detect(&s, &bad, body.clone()).await;
        assert_eq!(bcode(&v), 110, "{bad}: {v}");
    }
    // Missing: Baidu's 100.
    let r = s
        .client
        .post(s.url(DETECT))
        .json(&body)
        .send()
        .await
        .expect("send");
    let v = baidu_body(r).await;
    assert_eq!(
        (bcode(&v), v["error_msg"].as_str()),
        (100, Some("Invalid parameter"))
    );

    // Expired: a genuine token minted 31 days ago.
    let stale = mint(
        &hash_key(&s.key),
        None,
        Kind::Access,
        rec.id,
        unix_now() - ACCESS_TTL - 60,
    );
    let v = detect(&s, &stale, body.clone()).await;
    assert_eq!(
        (bcode(&v), v["error_msg"].as_str()),
        (111, Some("Access token expired"))
    );

    // A banned key's tokens are refused (6) and it gets no new token; a deleted key's
    // tokens are dead (110).
    let now = unix_now();
    s.store.ban_key(rec.id, now).await.expect("ban");
    assert_eq!(bcode(&detect(&s, &access, body.clone()).await), 6);
    let (status, v) = token_get(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", key),
        ],
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")));
    s.store.unban_key(rec.id, now).await.expect("unban");
    assert_eq!(bcode(&detect(&s, &access, body.clone()).await), 222202);
    s.store.delete_key(rec.id).await.expect("delete");
    assert_eq!(bcode(&detect(&s, &access, body).await), 110);
}

#[tokio::test]
async fn a_token_secret_stops_tokens_minted_from_the_key_table() {
    let s = start(|c| c.baidu_token_secret = "a-secret-kept-outside-the-db".into()).await;
    let rec = key_record(&s, &s.key).await;
    let body = json!({"image": b64(&flat_png(60, 60)), "image_type": "BASE64"});
    // Tokens the server issues work (the flat image then has no face: 222202).
    let issued = access_token(&s, &s.key).await;
    assert_eq!(bcode(&detect(&s, &issued, body.clone()).await), 222202);
    // A token made from the stored hash alone, as a reader of the key table could, is refused.
    let forged = mint(&hash_key(&s.key), None, Kind::Access, rec.id, unix_now());
    assert_eq!(bcode(&detect(&s, &forged, body.clone()).await), 110);
    // So is one made with another secret (a secret change revokes earlier tokens).
    let other = mint(
        &hash_key(&s.key),
        Some(b"another-secret-of-some-length"),
        Kind::Access,
        rec.id,
        unix_now(),
    );
    assert_eq!(bcode(&detect(&s, &other, body).await), 110);
}

fn assert_label(f: &Value, field: &str, values: &[&str]) {
    let t = f[field]["type"]
        .as_str()
        .unwrap_or_else(|| panic!("{field}: {f}"));
    assert!(values.contains(&t), "{field}={t}");
    let p = f[field]["probability"].as_f64().expect("probability");
    assert!((0.0..=1.0).contains(&p), "{field} probability {p}");
}

#[tokio::test]
async fn detect_base64_shape_fields_and_face_token() {
    let img = test_image(FACE);
    let s = start(|_| {}).await;
    let token = access_token(&s, &s.key).await;
    let image = b64(&img);

    // Without face_field: the token, the box, the probability and the angle only.
    let v = detect(&s, &token, json!({"image": image, "image_type": "BASE64"})).await;
    assert_eq!(bcode(&v), 0, "{v}");
    assert_eq!(v["error_msg"], "SUCCESS");
    let text = serde_json::to_string(&v).expect("json");
    let order = [
        "\"error_code\"",
        "\"error_msg\"",
        "\"log_id\"",
        "\"timestamp\"",
        "\"cached\"",
        "\"result\"",
    ];
    for w in order.windows(2) {
        assert!(
            text.find(w[0]) < text.find(w[1]),
            "{} before {}",
            w[0],
            w[1]
        );
    }
    assert_eq!(v["result"]["face_num"], 1);
    let f = &v["result"]["face_list"][0];
    let obj = f.as_object().expect("face");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["angle", "face_probability", "face_token", "location"]
    );
    let face_token = f["face_token"].as_str().expect("token").to_string();
    assert!(face_token.len() == 32 && face_token.bytes().all(|b| b.is_ascii_hexdigit()));
    for k in ["left", "top", "width", "height", "rotation"] {
        assert!(f["location"][k].is_number(), "location.{k}: {f}");
    }
    for k in ["yaw", "pitch", "roll"] {
        assert!(f["angle"][k].is_number(), "angle.{k}: {f}");
    }
    assert!(f["face_probability"].as_f64().is_some_and(|p| p > 0.5));

    // Every field, including the ones Facelens does not compute (left out).
    let all = "age,beauty,expression,face_shape,gender,glasses,landmark,landmark150,quality,\
               eye_status,emotion,face_type,mask,spoofing,race";
    let v = detect(
        &s,
        &token,
        json!({"image": image, "image_type": "BASE64", "face_field": all, "max_face_num": 1,
               "face_type": "LIVE", "liveness_control": "NONE"}),
    )
    .await;
    assert_eq!(bcode(&v), 0, "{v}");
    let f = &v["result"]["face_list"][0];
    assert_eq!(
        f["face_token"],
        face_token.as_str(),
        "same face, same token"
    );
    assert!(f["age"].as_u64().is_some_and(|a| a < 120), "{f}");
    assert!(
        f["beauty"]
            .as_f64()
            .is_some_and(|b| (0.0..=100.0).contains(&b))
    );
    assert_label(f, "expression", &["none", "smile", "laugh"]);
    assert_label(
        f,
        "face_shape",
        &["square", "triangle", "oval", "heart", "round"],
    );
    assert_label(f, "gender", &["male", "female"]);
    assert_label(f, "glasses", &["none", "common", "sun"]);
    assert_label(
        f,
        "emotion",
        &[
            "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "pouty", "grimace",
        ],
    );
    assert_label(f, "race", &["yellow", "white", "black", "arabs"]);
    assert_label(f, "face_type", &["human", "cartoon"]);
    for eye in ["left_eye", "right_eye"] {
        assert!(
            f["eye_status"][eye]
                .as_f64()
                .is_some_and(|e| (0.0..=1.0).contains(&e))
        );
    }
    let q = &f["quality"];
    for k in [
        "left_eye",
        "right_eye",
        "nose",
        "mouth",
        "left_cheek",
        "right_cheek",
        "chin_contour",
    ] {
        assert!(
            q["occlusion"][k]
                .as_f64()
                .is_some_and(|o| (0.0..=1.0).contains(&o)),
            "{q}"
        );
    }
    assert!(q["blur"].is_number() && q["illumination"].is_number());
    assert!(matches!(q["completeness"].as_u64(), Some(0 | 1)), "{q}");
    let lm = f["landmark"].as_array().expect("landmark");
    assert_eq!(lm.len(), 4);
    // Eyes above the nose, the nose above the mouth; the image-left eye first.
    let x = |i: usize| lm[i]["x"].as_f64().expect("x");
    let y = |i: usize| lm[i]["y"].as_f64().expect("y");
    assert!(
        x(0) < x(1) && y(0) < y(2) && y(1) < y(2) && y(2) < y(3),
        "{lm:?}"
    );
    let lm72 = f["landmark72"].as_array().expect("landmark72");
    assert_eq!(lm72.len(), 72);
    let loc = &f["location"];
    let (left, top) = (
        loc["left"].as_f64().expect("l"),
        loc["top"].as_f64().expect("t"),
    );
    let (w, h) = (
        loc["width"].as_f64().expect("w"),
        loc["height"].as_f64().expect("h"),
    );
    let chin = &lm72[6];
    assert!(
        (left..=left + w).contains(&chin["x"].as_f64().expect("x"))
            && chin["y"].as_f64().expect("y") > top + h * 0.6,
        "the chin (point 6) is low in the box: {chin} {loc}"
    );
    for absent in ["landmark150", "mask", "spoofing"] {
        assert!(
            f.get(absent).is_none(),
            "{absent} is not computed, so left out"
        );
    }
    // /openapi.json describes both Baidu endpoints and every field this answer carries.
    let doc: Value = s.get_json("/openapi.json").await;
    for p in ["/rest/2.0/face/v3/detect", "/oauth/2.0/token"] {
        assert!(doc["paths"].get(p).is_some(), "{p} documented");
    }
    let schemas = &doc["components"]["schemas"];
    for (schema, answer) in [("BaiduFaceSchema", f), ("BaiduResponse", &v)] {
        let described = &schemas[schema]["properties"];
        for k in answer.as_object().expect("object").keys() {
            assert!(described.get(k).is_some(), "{schema} describes {k}");
        }
    }

    // A selection: only what was asked.
    let v = detect(
        &s,
        &token,
        json!({"image": image, "image_type": "BASE64", "face_field": "age,gender"}),
    )
    .await;
    let f = &v["result"]["face_list"][0];
    assert!(f.get("age").is_some() && f.get("gender").is_some());
    for absent in [
        "beauty",
        "quality",
        "landmark",
        "landmark72",
        "emotion",
        "race",
    ] {
        assert!(f.get(absent).is_none(), "{absent} not asked for: {f}");
    }

    // A form body (what the older Python SDK sends) works the same.
    let r = s
        .client
        .post(s.url(DETECT))
        .query(&[("access_token", token.as_str())])
        .form(&[
            ("image", image.as_str()),
            ("image_type", "BASE64"),
            ("face_field", "age"),
        ])
        .send()
        .await
        .expect("send");
    let v = baidu_body(r).await;
    assert_eq!(
        v["result"]["face_list"][0]["face_token"],
        face_token.as_str()
    );
    let age = v["result"]["face_list"][0]["age"].clone();

    // FACE_TOKEN round trip, and the token is the Juhe endpoint's token_id too.
    let v = detect(
        &s,
        &token,
        json!({"image": face_token, "image_type": "FACE_TOKEN", "face_field": "age,landmark"}),
    )
    .await;
    assert_eq!(bcode(&v), 0, "{v}");
    let f = &v["result"]["face_list"][0];
    assert_eq!(f["face_token"], face_token.as_str());
    assert_eq!(f["age"], age);
    assert_eq!(f["landmark"].as_array().map(Vec::len), Some(4));
    assert!(
        f.get("landmark72").is_none(),
        "the mesh is not kept with a token"
    );
    let juhe = s.juhe(&[("image", &image)]).await;
    assert_eq!(
        juhe["result"]["face_list"][0]["token_id"],
        face_token.as_str()
    );
}

#[tokio::test]
async fn max_face_num_and_sort_by_centre() {
    let Some(img) = dev_image(CROWD) else { return };
    let s = start(|_| {}).await;
    let token = access_token(&s, &s.key).await;
    let image = b64(&img);
    let v = detect(
        &s,
        &token,
        json!({"image": image, "image_type": "BASE64", "max_face_num": 3}),
    )
    .await;
    assert_eq!(bcode(&v), 0, "{v}");
    let list = v["result"]["face_list"].as_array().expect("list");
    assert_eq!(list.len(), 3);
    assert_eq!(v["result"]["face_num"], 3);
    let area = |f: &Value| {
        f["location"]["width"].as_f64().expect("w") * f["location"]["height"].as_f64().expect("h")
    };
    assert!(area(&list[0]) >= area(&list[1]) && area(&list[1]) >= area(&list[2]));
    let v = detect(
        &s,
        &token,
        json!({"image": image, "image_type": "BASE64", "max_face_num": 3, "face_sort_type": 1}),
    )
    .await;
    assert_eq!(bcode(&v), 0, "{v}");
    assert_eq!(v["result"]["face_num"], 3);
}

/// A local image host: /face.jpg and /missing (404).
async fn image_host(face: Vec<u8>) -> String {
    let app = Router::new()
        .route("/face.jpg", get(move || async move { face.clone() }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn url_images_through_the_allowlist() {
    let host = image_host(test_image(FACE)).await;
    let s = start(|c| {
        c.url_fetch = true;
        c.url_allow = vec!["127.0.0.1/32".into()];
    })
    .await;
    let token = access_token(&s, &s.key).await;
    let url = |p: &str| json!({"image": format!("{host}{p}"), "image_type": "URL"});
    assert_eq!(bcode(&detect(&s, &token, url("/face.jpg")).await), 0);
    let v = detect(&s, &token, url("/missing")).await;
    assert_eq!(
        (bcode(&v), v["error_msg"].as_str()),
        (222204, Some("image_url_download_fail"))
    );
    // Not on the allowlist, or not http: the same code.
    for bad in ["http://127.0.0.2:9/x.jpg", "file:///etc/passwd"] {
        let v = detect(&s, &token, json!({"image": bad, "image_type": "URL"})).await;
        assert_eq!(bcode(&v), 222204, "{bad}");
    }
}

#[tokio::test]
async fn baidu_codes_for_each_failure() {
    let s = start(|_| {}).await;
    let token = access_token(&s, &s.key).await;
    let flat = b64(&flat_png(200, 200));
    let png = flat_png(200, 200);
    let truncated = b64(&png[..png.len() / 2]);
    let big = b64(&vec![0u8; 4 * 1024 * 1024 + 1]);
    let gif = b64(b"GIF89a\x01\x00\x01\x00");
    let tiny = b64(&flat_png(14, 100));
    let cases: Vec<(Value, u64, &str)> = vec![
        (
            json!({"image_type": "BASE64"}),
            222001,
            "param[image] is null",
        ),
        (json!({"image": flat}), 222001, "param[image_type] is null"),
        (
            json!({"image": flat, "image_type": "FILE"}),
            222015,
            "param[image_type] format error",
        ),
        (
            json!({"image": "not base64!!", "image_type": "BASE64"}),
            222013,
            "param[image] format error",
        ),
        (
            json!({"image": big, "image_type": "BASE64"}),
            216202,
            "image size error",
        ),
        (
            json!({"image": gif, "image_type": "BASE64"}),
            216201,
            "image format error",
        ),
        (
            json!({"image": truncated, "image_type": "BASE64"}),
            222203,
            "image check fail",
        ),
        (
            json!({"image": tiny, "image_type": "BASE64"}),
            216202,
            "image size error",
        ),
        (
            json!({"image": flat, "image_type": "BASE64", "max_face_num": 0}),
            222016,
            "param[max_face_num] format error",
        ),
        (
            json!({"image": flat, "image_type": "BASE64", "max_face_num": 121}),
            222016,
            "param[max_face_num] format error",
        ),
        (
            json!({"image": flat, "image_type": "BASE64", "face_type": "SELFIE"}),
            222024,
            "param[face_type] format error",
        ),
        (
            json!({"image": flat, "image_type": "BASE64", "face_field": "age;beauty"}),
            222017,
            "param[face_field] format error",
        ),
        (
            json!({"image": flat, "image_type": "BASE64", "liveness_control": "LOW"}),
            216102,
            "service not support",
        ),
        (
            json!({"image": flat, "image_type": "BASE64", "liveness_control": "MAX"}),
            222020,
            "param[liveness_control] format error",
        ),
        (
            json!({"image": flat, "image_type": "BASE64", "face_sort_type": 2}),
            216100,
            "invalid param",
        ),
        (
            json!({"image": "0123456789abcdef0123456789abcdef", "image_type": "FACE_TOKEN"}),
            222209,
            "face token not exist",
        ),
        (
            json!({"image": "http://127.0.0.1:9/x.jpg", "image_type": "URL"}),
            222204,
            "image_url_download_fail",
        ),
        (
            json!({"image": flat, "image_type": "BASE64", "max_face_num": 120, "face_type": "IDCARD"}),
            222202,
            "pic not has face",
        ),
    ];
    for (body, want, msg) in cases {
        let v = detect(&s, &token, body.clone()).await;
        assert_eq!(bcode(&v), want, "{body}: {v}");
        assert_eq!(v["error_msg"], msg, "{body}");
    }
    // A body that is not JSON.
    let r = s
        .client
        .post(s.url(DETECT))
        .query(&[("access_token", token.as_str())])
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(bcode(&baidu_body(r).await), 216100);

    // The API switch under its own name, and a key not allowed to call it.
    let now = unix_now();
    s.store
        .set_api_state("baiduDetect", ApiState::Maintenance, now)
        .await
        .expect("switch");
    let body = json!({"image": flat, "image_type": "BASE64"});
    assert_eq!(bcode(&detect(&s, &token, body.clone()).await), 2);
    s.store
        .set_api_state("baiduDetect", ApiState::Disabled, now)
        .await
        .expect("switch");
    assert_eq!(bcode(&detect(&s, &token, body.clone()).await), 3);
    s.store
        .set_api_state("baiduDetect", ApiState::Normal, now)
        .await
        .expect("switch");
    let juhe_only = s
        .store
        .create_key(
            NewKey {
                allowed_apis: vec!["faceDetect".into()],
                ..NewKey::default()
            },
            now,
        )
        .await
        .expect("key")
        .secret
        .expose()
        .to_string();
    let t = access_token(&s, &juhe_only).await;
    let v = detect(&s, &t, body.clone()).await;
    assert_eq!(
        (bcode(&v), v["error_msg"].as_str()),
        (6, Some("No permission to access data"))
    );
    let pending = s
        .store
        .create_key(
            NewKey {
                status: KeyStatus::Pending,
                ..NewKey::default()
            },
            now,
        )
        .await
        .expect("key")
        .secret
        .expose()
        .to_string();
    assert_eq!(bcode(&detect(&s, &pending, body.clone()).await), 6);
    let expired = s
        .store
        .create_key(
            NewKey {
                expires_at: Some(now - 5),
                ..NewKey::default()
            },
            now,
        )
        .await
        .expect("key")
        .secret
        .expose()
        .to_string();
    assert_eq!(bcode(&detect(&s, &expired, body).await), 111);

    // Only the one 'no face' answer counted against the server's key.
    let rec = key_record(&s, &s.key).await;
    let usage = s
        .store
        .quota_usage(rec.id, unix_now())
        .await
        .expect("usage");
    assert_eq!(usage.total, 1, "{usage:?}");
}

#[tokio::test]
async fn quota_and_rate_limits_give_baidu_limit_codes() {
    let s = start(|_| {}).await;
    let now = unix_now();
    let body = json!({"image": b64(&flat_png(64, 64)), "image_type": "BASE64"});
    for (daily, total, code, msg) in [
        (Some(1), None, 17, "Open api daily request limit reached"),
        (None, Some(1), 19, "Open api total request limit reached"),
    ] {
        let created = s
            .store
            .create_key(
                NewKey {
                    daily_quota: daily,
                    total_quota: total,
                    ..NewKey::default()
                },
                now,
            )
            .await
            .expect("key");
        let t = access_token(&s, created.secret.expose()).await;
        assert_eq!(
            bcode(&detect(&s, &t, body.clone()).await),
            222202,
            "the one allowed call"
        );
        let v = detect(&s, &t, body.clone()).await;
        assert_eq!((bcode(&v), v["error_msg"].as_str()), (code, Some(msg)));
        // Usage keeps Facelens's codes: one counted 'no face', one quota refusal.
        let rows = s
            .store
            .usage_last_days(Some(created.key.id), 1, unix_now())
            .await
            .expect("usage");
        let codes: Vec<(u32, i64)> = rows.iter().map(|r| (r.code, r.count)).collect();
        assert_eq!(codes, vec![(10012, 1), (200216, 1)], "{rows:?}");
    }

    // The per-IP rate: Baidu's QPS code.
    let s = start(|c| {
        c.ip_rate_per_second = 1;
        c.ip_rate_burst = 1;
    })
    .await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(bcode(&detect(&s, &s.key, body.clone()).await));
    }
    assert!(codes.contains(&18), "{codes:?}");
}

/// scripts/baidu_client.py was written from Baidu's documented request format only (the
/// OAuth step, then a JSON POST with access_token in the query); it must get Baidu's answer.
#[tokio::test]
async fn a_client_written_from_baidus_document() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        facelens_testkit::skip("python3 not found");
        return;
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/baidu_client.py");
    let s = start(|_| {}).await;
    let id = key_record(&s, &s.key).await.id.to_string();
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(facelens_testkit::test_image(TRIO))
        .args(["--host", &s.base, "--api-key", &id, "--secret-key", &s.key])
        .args([
            "--max-face-num",
            "2",
            "--face-field",
            "age,gender,landmark,quality",
        ])
        .output()
        .await
        .expect("run the client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("the client prints JSON");
    assert_eq!(v["error_code"], 0, "{v}");
    assert_eq!(v["error_msg"], "SUCCESS");
    let list = v["result"]["face_list"].as_array().expect("face_list");
    assert_eq!(list.len(), 2);
    for f in list {
        assert!(
            f["age"].is_number() && f["gender"]["type"].is_string(),
            "{f}"
        );
        assert_eq!(f["landmark72"].as_array().map(Vec::len), Some(72));
        assert!(f.get("beauty").is_none());
    }
}
