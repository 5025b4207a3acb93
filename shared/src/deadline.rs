//! How long a request may still run. In Lambda the invocation has a hard
//! deadline (the function's timeout): past it the process is frozen
//! mid-work, the client gets API Gateway's 503 and nothing of ours runs to
//! say why. So each request carries its [`Deadline`]: the Lambda context's
//! where there is one, none locally (the local server has no such limit).
//! Retries stop short of it and answer `503` themselves; work that can be
//! finished later (a clean-up) stops in time and leaves the rest to the
//! background; a streamed export ends with an explicit failed transfer
//! instead of being cut off.
//!
//! The [`middleware`] sets the deadline for the handler's task
//! ([`Deadline::current`]) and as a request extension (for work that
//! outlives the handler, like the export's stream).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// An instant by which a piece of work must have answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

tokio::task_local! {
    static CURRENT: Deadline;
}

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    /// `duration` from now.
    pub fn after(duration: Duration) -> Self {
        Self(Instant::now() + duration)
    }

    /// The deadline of a Lambda invocation. Lambda sends it as Unix
    /// milliseconds; cargo-lambda's emulator sends the function's timeout
    /// instead (`600000`). No real deadline lies before 2001, so a value
    /// that would is read as milliseconds from now.
    pub fn of_invocation(context: &lambda_http::Context) -> Self {
        const YEAR_2001_MS: u64 = 978_307_200_000;
        if context.deadline < YEAR_2001_MS {
            return Self::after(Duration::from_millis(context.deadline));
        }
        let left = context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Self::after(left)
    }

    pub fn instant(&self) -> Instant {
        self.0
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether less than `margin` is left.
    pub fn is_within(&self, margin: Duration) -> bool {
        self.remaining() < margin
    }

    /// The earlier of this deadline and `duration` from now.
    pub fn or_sooner(self, duration: Duration) -> Self {
        self.min(Self::after(duration))
    }

    /// The deadline of the request this task serves, if it has one.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|deadline| *deadline).ok()
    }

    /// Runs `work` with this as its [`Deadline::current`].
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}

/// The request's deadline: one already set on the request (a test, an outer
/// layer), else the Lambda invocation's, else none.
pub fn of_request(request: &Request) -> Option<Deadline> {
    request.extensions().get::<Deadline>().copied().or_else(|| {
        request
            .extensions()
            .get::<lambda_http::Context>()
            .filter(|context| context.deadline > 0)
            .map(Deadline::of_invocation)
    })
}

/// Sets the request's deadline for its handler (see the module doc).
pub async fn middleware(mut request: Request, next: Next) -> Response {
    match of_request(&request) {
        Some(deadline) => {
            request.extensions_mut().insert(deadline);
            deadline.scope(next.run(request)).await
        }
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_current_deadline_is_the_scope_s() {
        assert_eq!(Deadline::current(), None);
        let deadline = Deadline::after(Duration::from_secs(5));
        let seen = deadline.scope(async { Deadline::current() }).await;
        assert_eq!(seen, Some(deadline));
        assert!(!deadline.is_within(Duration::from_secs(1)));
        assert!(deadline.is_within(Duration::from_secs(6)));
        assert!(deadline.or_sooner(Duration::from_secs(1)) < deadline);
    }

    #[test]
    fn a_lambda_context_gives_its_deadline() {
        let mut context = lambda_http::Context::default();
        let in_three_seconds = SystemTime::now() + Duration::from_secs(3);
        context.deadline = in_three_seconds
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut request = Request::new(axum::body::Body::empty());
        request.extensions_mut().insert(context);
        let deadline = of_request(&request).expect("a deadline");
        assert!(deadline.remaining() <= Duration::from_secs(3));
        assert!(deadline.remaining() > Duration::from_secs(2));
    }

    #[test]
    fn an_emulator_s_timeout_in_place_of_a_deadline_is_read_as_time_left() {
        // cargo-lambda's emulator sends `lambda-runtime-deadline-ms: 600000`.
        let mut context = lambda_http::Context::default();
        context.deadline = 600_000;
        let left = Deadline::of_invocation(&context).remaining();
        assert!(left > Duration::from_secs(599) && left <= Duration::from_secs(600));
        // A deadline that has passed is a deadline that has passed.
        context.deadline = 1_700_000_000_000;
        assert_eq!(
            Deadline::of_invocation(&context).remaining(),
            Duration::ZERO
        );
    }
}
