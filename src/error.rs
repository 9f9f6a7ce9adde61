//! The shared classification of failures. Every layer's error type maps itself onto an
//! [`ErrorKind`] with an exhaustive `kind()`; each edge (HTTP, later MLLP and DIMSE) turns the
//! kind into its own protocol's answer in one table. Imports nothing from the crate.

/// What went wrong from the caller's point of view; chosen by the layer that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is malformed or fails validation.
    Invalid,
    /// Well-formed but breaks a business rule.
    Unprocessable,
    /// The addressed thing does not exist.
    NotFound,
    /// The addressed thing existed and was deleted.
    Gone,
    /// The request conflicts with the current state (for example a concurrent write).
    Conflict,
    /// A precondition the caller set (`If-Match`, a conditional match count) does not hold.
    PreconditionFailed,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body's media type is not one the service reads.
    UnsupportedMediaType,
    /// None of the media types the caller accepts can be produced.
    NotAcceptable,
    /// The interaction is not supported on this resource.
    MethodNotAllowed,
    /// No valid access token: the caller is not known.
    Unauthenticated,
    /// The caller is known, and its access does not cover the request.
    Forbidden,
    /// The caller did not send its request in time (a request body that stopped arriving).
    TimedOut,
    /// A bounded queue is full; the caller may retry later.
    Overloaded,
    /// A dependency (database, model, upstream) is not available right now.
    Unavailable,
    /// Anything else: a bug or an unexpected failure. Details go to the logs only.
    Internal,
}

impl ErrorKind {
    const NAMES: [(ErrorKind, &'static str); 16] = [
        (ErrorKind::Invalid, "invalid"),
        (ErrorKind::Unprocessable, "unprocessable"),
        (ErrorKind::NotFound, "not-found"),
        (ErrorKind::Gone, "gone"),
        (ErrorKind::Conflict, "conflict"),
        (ErrorKind::PreconditionFailed, "precondition-failed"),
        (ErrorKind::PayloadTooLarge, "payload-too-large"),
        (ErrorKind::UnsupportedMediaType, "unsupported-media-type"),
        (ErrorKind::NotAcceptable, "not-acceptable"),
        (ErrorKind::MethodNotAllowed, "method-not-allowed"),
        (ErrorKind::Unauthenticated, "unauthenticated"),
        (ErrorKind::Forbidden, "forbidden"),
        (ErrorKind::TimedOut, "timed-out"),
        (ErrorKind::Overloaded, "overloaded"),
        (ErrorKind::Unavailable, "unavailable"),
        (ErrorKind::Internal, "internal"),
    ];

    /// A stable name, for what is recorded (a failed job's kind).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("internal", |(_, name)| name)
    }

    /// The kind a [`ErrorKind::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(kind, _)| *kind)
    }
}

/// An error and its sources on one line, for logs and stored reasons. Layer errors carry ids
/// and positions, never values, so the chain is safe to log.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn every_kind_has_a_name_that_reads_back() {
        for (kind, name) in ErrorKind::NAMES {
            assert_eq!(kind.name(), name);
            assert_eq!(ErrorKind::from_name(name), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("teapot"), None);
    }
}
