//! The one table of error codes.
//!
//! The contract (Juhe faceDetect) has two kinds of codes: *system* codes (100xx, with a legacy
//! `resultcode` 1xx) about keys, quotas and the platform, and *service* codes in the format
//! `2` + 3-digit module + 2-digit code. Juhe never published the faceDetect service list, so the
//! service codes below are ours (module `002` = face detection), documented in `docs/errors.md`.
//!
//! Every front end answers from this table: the Juhe endpoint puts `code()` and `message()` in
//! its body (always HTTP 200, like the original), the native API uses `http_status()` and
//! `slug()`. A test keeps `docs/errors.md` in step with it.

use serde::Serialize;

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $legacy:expr, $http:literal, $slug:literal, $msg:literal, $en:literal; )*) => {
        /// Every error the service can answer with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
        }

        impl ErrorCode {
            /// All codes, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The numeric `error_code` of the contract.
            pub const fn code(self) -> u32 {
                match self { $(ErrorCode::$name => $code,)* }
            }

            /// The legacy `resultcode` (system codes only).
            pub const fn legacy(self) -> Option<u32> {
                match self { $(ErrorCode::$name => $legacy,)* }
            }

            /// HTTP status used by the native API (the Juhe endpoint always answers 200).
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorCode::$name => $http,)* }
            }

            /// A stable machine-readable name, e.g. `image_too_small`.
            pub const fn slug(self) -> &'static str {
                match self { $(ErrorCode::$name => $slug,)* }
            }

            /// The Chinese `reason` string of the contract.
            pub const fn message(self) -> &'static str {
                match self { $(ErrorCode::$name => $msg,)* }
            }

            /// An English description for logs, the CLI and the native API.
            pub const fn english(self) -> &'static str {
                match self { $(ErrorCode::$name => $en,)* }
            }
        }
    };
}

codes! {
    // ---- System level (from the original document) ----
    UnknownKey = 10001, Some(101), 401, "unknown_key", "错误的请求KEY", "unknown API key";
    KeyNotAllowed = 10002, Some(102), 403, "key_not_allowed", "该KEY无请求权限", "this key may not call this API";
    KeyExpired = 10003, Some(103), 403, "key_expired", "KEY过期", "the key has expired";
    WrongOpenid = 10004, Some(104), 403, "wrong_openid", "错误的OPENID", "wrong openid for this key";
    KeyPending = 10005, Some(105), 403, "key_pending", "应用未审核超时,请提交认证", "the key is not approved yet";
    SourceNotAllowed = 10007, Some(107), 403, "source_not_allowed", "未知的请求源", "request source not allowed for this key";
    BannedIp = 10008, Some(108), 403, "banned_ip", "被禁止的IP", "this IP address is banned";
    BannedKey = 10009, Some(109), 403, "banned_key", "被禁止的KEY", "this key is banned";
    IpRateLimited = 10011, Some(111), 429, "ip_rate_limited", "当前IP请求超过限制", "too many requests from this IP address";
    QuotaExceeded = 10012, Some(112), 429, "quota_exceeded", "请求超过次数限制", "the key's request quota is used up";
    TestKeyLimit = 10013, Some(113), 429, "test_key_limit", "测试KEY超过请求限制", "the test key's limit is used up";
    Internal = 10014, Some(114), 500, "internal_error", "系统内部异常", "internal error";
    Maintenance = 10020, Some(120), 503, "maintenance", "接口维护", "the API is under maintenance";
    ApiDisabled = 10021, Some(121), 503, "api_disabled", "接口停用", "the API is disabled";

    // ---- Service level, module 002 = face detection (ours, see docs/errors.md) ----
    MissingParameter = 200201, None, 400, "missing_parameter", "参数缺失或为空", "a required parameter is missing or empty";
    InvalidBase64 = 200202, None, 400, "invalid_base64", "图片base64编码错误", "image is not valid base64";
    ImageTooLarge = 200203, None, 413, "image_too_large", "图片大小超过4M", "the image is larger than 4 MB";
    UnsupportedFormat = 200204, None, 415, "unsupported_format", "图片格式不支持,仅支持jpg/png/bmp", "not a jpg, png or bmp image";
    CorruptImage = 200205, None, 422, "corrupt_image", "图片数据损坏,无法解码", "the image is truncated or corrupt";
    ImageTooSmall = 200206, None, 422, "image_too_small", "图片尺寸过小,最短边须不小于15像素", "the image's shortest side is under 15 px";
    ImageDimensionsTooLarge = 200207, None, 422, "image_dimensions_too_large", "图片尺寸过大,最长边须不大于4096像素", "the image's longest side is over 4096 px";
    InvalidFaceNum = 200208, None, 400, "invalid_face_num", "face_num参数错误,须为1到10的整数", "face_num must be an integer from 1 to 10 (max_faces of the native API: 1 to 100)";
    InvalidFaceType = 200209, None, 400, "invalid_face_type", "face_type参数错误,须为1到4的整数", "face_type must be an integer from 1 to 4";
    InvalidImageType = 200210, None, 400, "invalid_image_type", "image_type参数错误,须为1到3的整数", "image_type must be an integer from 1 to 3";
    UrlDownloadFailed = 200211, None, 422, "url_download_failed", "图片下载失败", "the image URL could not be downloaded";
    UrlNotAllowed = 200212, None, 422, "url_not_allowed", "图片地址不允许访问", "the image URL is not allowed (scheme or address refused)";
    UrlTimeout = 200213, None, 422, "url_timeout", "图片下载超时", "downloading the image URL timed out";
    UrlTooLarge = 200214, None, 413, "url_too_large", "下载的图片超过4M", "the downloaded image is larger than 4 MB";
    InvalidToken = 200215, None, 404, "invalid_token", "token_id不存在或已过期", "unknown or expired token_id";
    NoFace = 200216, None, 422, "no_face", "图片中没有检测到人脸", "no face was found in the image";
    Busy = 200217, None, 503, "busy", "服务繁忙,请稍后再试", "the server is busy; retry later";
    MalformedRequest = 200218, None, 400, "malformed_request", "请求格式错误,无法解析", "the request could not be parsed (body encoding, JSON, multipart or too many fields)";
}

impl ErrorCode {
    /// Look a code up by its number.
    pub fn from_code(code: u32) -> Option<ErrorCode> {
        Self::ALL.iter().copied().find(|c| c.code() == code)
    }

    /// System codes concern keys and the platform; service codes the request itself.
    pub fn is_system(self) -> bool {
        self.code() < 100_000
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.english())
    }
}

/// An error code with a detail for humans (the native API and the CLI show the detail; the
/// Juhe endpoint shows only the contract's message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceError {
    pub code: ErrorCode,
    pub detail: String,
}

impl FaceError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl From<ErrorCode> for FaceError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code, code.english())
    }
}

impl std::fmt::Display for FaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.code(),
            self.code.slug(),
            self.detail
        )
    }
}

impl std::error::Error for FaceError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        let mut slugs = HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate code {}", c.code());
            assert!(slugs.insert(c.slug()), "duplicate slug {}", c.slug());
            assert!(!c.message().is_empty());
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
            if c.is_system() {
                assert_eq!(c.legacy(), Some(c.code() - 10_000 + 100));
            } else {
                // 2 + module 002 + two digits
                assert_eq!(c.code() / 100, 2002, "{}", c.code());
                assert!(c.legacy().is_none());
            }
        }
    }
}

#[cfg(test)]
mod docs_tests {
    use super::ErrorCode;

    /// docs/errors.md lists every code with its number, slug and contract message.
    #[test]
    fn errors_doc_matches_the_table() {
        let doc = include_str!("../../../docs/errors.md");
        for &c in ErrorCode::ALL {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| {} |", c.code())))
                .unwrap_or_else(|| panic!("docs/errors.md has no row for {}", c.code()));
            assert!(row.contains(&format!("`{}`", c.slug())), "{row}");
            assert!(row.contains(c.message()), "{row}");
            assert!(row.contains(&format!("| {} |", c.http_status())), "{row}");
        }
    }
}
