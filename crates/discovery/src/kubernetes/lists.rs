//! How one watch lists: its first list by a streaming list, every later one
//! (and the first, once streaming fails) in pages.
//!
//! Control plane, on each watch's task. A streaming list (a watch with
//! `sendInitialEvents=true`, served from the API server's watch cache) lets
//! the server encode objects while the watch decodes the ones before; a
//! paged list asks for each page of 500 in turn, one request per page (one
//! page fetched ahead, [`super::prefetch`]). At 100,000 Services /
//! 1,000,000 endpoints the source is ready in about 1.7 s instead of 2.2 s
//! (docs/performance.md). kube-rs starts a streaming list at
//! `resourceVersion=0` (any cached state), as CoreDNS's first list does;
//! later lists page and ask for the most recent state, so a relist after
//! `410 Gone` never serves an older state from a lagging watch cache.
//!
//! ```text
//! streaming ──InitDone────────────────────────────────▶ paged (later lists)
//!     ├──refused (400/422 naming the options) ─────────▶ paged
//!     ├──STREAMING_ATTEMPTS failures in a row ─────────▶ paged
//!     └──stream ended before its end-of-list bookmark ─▶ paged
//! ```
//!
//! Invariant: once paged, a watch never streams again (no retry storm
//! against a server that refuses). client-go's reflector also falls back on
//! any watch-list error, but for one attempt at a time.

use kube::runtime::watcher::{self, InitialListStrategy};

/// Streaming-list requests the API server answers in a row with an error
/// status (not a refusal, not 401, 403 or 429), before a watch lists in
/// pages instead. Connection failures and those three statuses neither
/// count nor reset the count; a list that starts resets it.
pub(super) const STREAMING_ATTEMPTS: u32 = 3;

/// The list strategy of one watch, fed with its watcher's events.
pub(super) struct Lists {
    config: watcher::Config,
    /// A streaming list has begun (`Init`) and not ended (`InitDone`).
    open: bool,
    /// Streaming lists failed in a row.
    failures: u32,
}

/// Why a watch stopped streaming its lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fallback {
    /// The API server refused the options ([`refuses_streaming_lists`]).
    Refused,
    /// [`STREAMING_ATTEMPTS`] streaming lists failed in a row.
    Failing,
    /// A streaming list's stream ended before its end-of-list bookmark (a
    /// proxy that cuts long responses). It shows when kube-rs's next
    /// streaming request has been accepted; that stream is dropped unread.
    Cut,
}

// === impl Lists ===

impl Lists {
    /// Streams the first list of `config`'s watch.
    pub(super) fn new(config: watcher::Config) -> Self {
        Self {
            config: config.streaming_lists(),
            open: false,
            failures: 0,
        }
    }

    /// The configuration for a new watcher stream.
    pub(super) fn config(&self) -> watcher::Config {
        self.config.clone()
    }

    /// Whether the next list streams.
    pub(super) fn streaming(&self) -> bool {
        self.config.initial_list_strategy == InitialListStrategy::StreamingList
    }

    /// An `Init` event: a list has begun. `Some` when it is a streaming list
    /// starting again before the last one ended; the caller starts a new
    /// stream with [`Self::config`], which now pages.
    pub(super) fn init(&mut self) -> Option<Fallback> {
        if !self.streaming() {
            return None;
        }
        self.failures = 0;
        std::mem::replace(&mut self.open, true).then(|| self.page(Fallback::Cut))
    }

    /// An `InitDone` event: the list is complete, and later lists page.
    pub(super) fn init_done(&mut self) {
        self.list_in_pages();
    }

    /// The caller starts a new stream on its own (a relist): its `Init`
    /// does not follow a cut stream.
    pub(super) fn restart(&mut self) {
        self.open = false;
    }

    /// A failed request. `Some` when the watch should stream no more; the
    /// caller starts a new stream with [`Self::config`], which now pages.
    pub(super) fn failed(&mut self, error: &watcher::Error) -> Option<Fallback> {
        if !self.streaming() {
            return None;
        }
        let watcher::Error::WatchStartFailed(kube::Error::Api(status)) = error else {
            return None;
        };
        if refuses_streaming_lists(status) {
            return Some(self.page(Fallback::Refused));
        }
        if matches!(status.code, 401 | 403 | 429) {
            return None;
        }
        self.failures += 1;
        (self.failures >= STREAMING_ATTEMPTS).then(|| self.page(Fallback::Failing))
    }

    /// Pages from now on, because of `why`.
    fn page(&mut self, why: Fallback) -> Fallback {
        self.list_in_pages();
        why
    }

    fn list_in_pages(&mut self) {
        self.config.initial_list_strategy = InitialListStrategy::ListWatch;
        self.open = false;
    }
}

// === impl Fallback ===

impl Fallback {
    /// What the log line says.
    pub(super) fn message(self) -> &'static str {
        match self {
            Self::Refused => {
                "kubernetes: the API server does not serve streaming lists (WatchList feature gate off); listing in pages instead"
            }
            Self::Failing => "kubernetes: streaming lists keep failing; listing in pages instead",
            Self::Cut => {
                "kubernetes: a streaming list ended before its last object; listing in pages instead"
            }
        }
    }
}

/// Whether the API server refused a streaming list's options, which no retry
/// changes: 422 Invalid naming `sendInitialEvents` from kube-apiserver with
/// the WatchList feature gate off (its default in 1.27–1.31 and 1.33), or
/// naming `resourceVersionMatch` from a release before 1.27; 400 Bad Request
/// naming either from a server or proxy that does not take them.
fn refuses_streaming_lists(status: &kube::core::Status) -> bool {
    matches!(status.code, 400 | 422)
        && ["sendInitialEvents", "resourceVersionMatch"]
            .iter()
            .any(|field| status.message.contains(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_failed(code: u16, message: &str) -> watcher::Error {
        let mut status = kube::core::Status::failure(message, "");
        status.code = code;
        watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(status)))
    }

    const GATE_OFF: &str = "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: \
        sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled";

    #[test]
    fn the_first_list_streams_and_later_ones_page() {
        let mut lists = Lists::new(watcher::Config::default());
        assert!(lists.streaming());
        assert_eq!(lists.init(), None);
        lists.init_done();
        assert!(!lists.streaming());
        assert_eq!(
            lists.config().initial_list_strategy,
            InitialListStrategy::ListWatch
        );
        // Once paged, nothing streams again.
        assert_eq!(lists.failed(&start_failed(422, GATE_OFF)), None);
        assert_eq!(lists.init(), None);
        assert_eq!(lists.init(), None);
    }

    #[test]
    fn a_refusal_pages_at_once_other_errors_after_three() {
        let mut lists = Lists::new(watcher::Config::default());
        assert_eq!(
            lists.failed(&start_failed(422, GATE_OFF)),
            Some(Fallback::Refused)
        );
        assert!(!lists.streaming());

        let before_1_27 = "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: \
            Forbidden: resourceVersionMatch is forbidden for watch";
        let mut lists = Lists::new(watcher::Config::default());
        assert_eq!(
            lists.failed(&start_failed(422, before_1_27)),
            Some(Fallback::Refused)
        );

        // A bad label selector is the caller's error, not a refusal: retried,
        // and the first of three failures (then 500 and 405).
        let mut lists = Lists::new(watcher::Config::default());
        assert_eq!(
            lists.failed(&start_failed(400, "unable to parse requirement")),
            None
        );
        // Authentication, authorization and overload never count.
        for code in [401, 403, 429, 401, 403, 429] {
            assert_eq!(lists.failed(&start_failed(code, "no")), None);
        }
        assert_eq!(lists.failed(&start_failed(500, "etcd")), None);
        assert_eq!(
            lists.failed(&start_failed(405, "not allowed")),
            Some(Fallback::Failing)
        );
        assert!(!lists.streaming());

        // A successful start between failures starts the count again.
        let mut lists = Lists::new(watcher::Config::default());
        assert_eq!(lists.failed(&start_failed(500, "a")), None);
        assert_eq!(lists.failed(&start_failed(500, "b")), None);
        assert_eq!(lists.init(), None);
        lists.restart();
        assert_eq!(lists.failed(&start_failed(500, "c")), None);
        assert_eq!(lists.failed(&start_failed(500, "d")), None);
        assert!(lists.streaming());
    }

    #[test]
    fn a_stream_cut_before_its_bookmark_pages() {
        let mut lists = Lists::new(watcher::Config::default());
        assert_eq!(lists.init(), None);
        // kube-rs starts the streaming list again: a second `Init`.
        assert_eq!(lists.init(), Some(Fallback::Cut));
        assert!(!lists.streaming());

        // A relist the caller starts itself is not a cut.
        let mut lists = Lists::new(watcher::Config::default());
        assert_eq!(lists.init(), None);
        lists.restart();
        assert_eq!(lists.init(), None);
        assert!(lists.streaming());
    }
}
