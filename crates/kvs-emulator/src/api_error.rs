//! AWS errors as the emulated services put them on the wire.
//!
//! restJson1 errors carry the shape name in `x-amzn-ErrorType` (with the `:<namespace URL>` suffix
//! AWS appends) and a JSON body whose message member is `Message` in the control plane and the
//! signaling REST API but `message` in the storage API (protocol notes §4.5, §8.2).

use http::StatusCode;

/// Which API answers, which decides the message member's spelling and the error namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `kinesisvideo` 2017-09-30: `Message`, AccessDenied is 401.
    ControlPlane,
    /// `kinesis-video-signaling` 2019-12-04: `Message`.
    SignalingRest,
    /// `kinesis-video-webrtc-storage` 2018-05-10: `message`, AccessDenied is 403.
    Storage,
}

impl Api {
    fn namespace(self) -> &'static str {
        match self {
            Api::ControlPlane => "https://kinesisvideo.amazonaws.com/doc/2017-09-30/",
            Api::SignalingRest => "https://kinesisvideo.amazonaws.com/doc/2019-12-04/",
            Api::Storage => "https://kinesisvideo.amazonaws.com/doc/2018-05-10/",
        }
    }

    fn message_member(self) -> &'static str {
        match self {
            Api::Storage => "message",
            Api::ControlPlane | Api::SignalingRest => "Message",
        }
    }
}

/// One error answer of an emulated AWS API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The error shape's name, e.g. `ResourceNotFoundException`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 403 ExpiredTokenException: a temporary key used after its expiration, as AWS answers
    /// (the same shape in every API).
    pub(crate) fn expired_token() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        )
    }

    /// 400 InvalidArgumentException.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgumentException", message)
    }

    /// 404 ResourceNotFoundException.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    /// 400 ClientLimitExceededException.
    pub(crate) fn client_limit(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ClientLimitExceededException",
            message,
        )
    }

    /// 400 ResourceInUseException.
    pub(crate) fn in_use(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ResourceInUseException", message)
    }

    /// The API's "not allowed" error: AccessDenied 401 (control plane), NotAuthorized 401
    /// (signaling REST) or AccessDenied 403 (storage).
    pub(crate) fn access_denied(api: Api, message: impl Into<String>) -> Self {
        let (status, code) = match api {
            Api::ControlPlane => (StatusCode::UNAUTHORIZED, "AccessDeniedException"),
            Api::SignalingRest => (StatusCode::UNAUTHORIZED, "NotAuthorizedException"),
            Api::Storage => (StatusCode::FORBIDDEN, "AccessDeniedException"),
        };
        Self::new(status, code, message)
    }

    /// The value of the `x-amzn-ErrorType` header for this API.
    pub(crate) fn error_type_header(&self, api: Api) -> String {
        format!("{}:{}", self.code, api.namespace())
    }

    /// The JSON body for this API.
    pub(crate) fn json_body(&self, api: Api) -> String {
        let mut body = serde_json::Map::new();
        body.insert(api.message_member().to_owned(), self.message.clone().into());
        serde_json::Value::Object(body).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_member_follows_the_api_model() {
        let err = ApiError::not_found("The requested channel is not found or not active.");
        assert_eq!(
            err.json_body(Api::ControlPlane),
            r#"{"Message":"The requested channel is not found or not active."}"#
        );
        assert_eq!(
            err.json_body(Api::Storage),
            r#"{"message":"The requested channel is not found or not active."}"#
        );
    }

    #[test]
    fn access_denied_status_differs_between_control_plane_and_storage() {
        assert_eq!(ApiError::access_denied(Api::ControlPlane, "x").status, 401);
        assert_eq!(ApiError::access_denied(Api::Storage, "x").status, 403);
        let signaling = ApiError::access_denied(Api::SignalingRest, "x");
        assert_eq!(
            (signaling.status.as_u16(), signaling.code),
            (401, "NotAuthorizedException")
        );
    }

    #[test]
    fn error_type_header_carries_the_namespace_suffix() {
        let header = ApiError::invalid_argument("x").error_type_header(Api::ControlPlane);
        assert_eq!(
            header,
            "InvalidArgumentException:https://kinesisvideo.amazonaws.com/doc/2017-09-30/"
        );
    }
}
