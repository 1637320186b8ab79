//! What the subscriber lets through: the log filter, and the guard that keeps per-layer
//! filters from losing events.
//!
//! Invariant: no `enabled` question is answered "yes" by the subscriber unless some layer
//! will take what follows. tracing-subscriber's per-layer filters (`Layer::with_filter`) pass
//! their verdict from `enabled` to the span or event that follows through a thread-local, and
//! answer "yes" to `enabled` even when they refuse. A caller that asks and then logs nothing
//! leaves a refusal behind, and the thread's next span or event whose callsite is always
//! enabled is skipped as if it had been refused. `tracing-log`'s bridge asks for every `log`
//! record (`log_enabled!`), and sqlx asks so after every query, then logs by `tracing`, whose
//! callsite the filter refuses: with `RUST_LOG=herd=debug,info` and a PostgreSQL journal the
//! `journal_opened` line was lost that way (tokio-rs/tracing#2519, unfixed in 0.3.23). So the
//! log layer alone is filtered globally, where a refusal is a "no" and nothing is carried, and
//! with traces the per-layer filters sit under [`EitherFilter`], a global filter that refuses
//! what both of them refuse.

use tracing::Metadata;
use tracing::span;
use tracing::subscriber::Interest;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};

use super::TelemetryError;

/// The log filter as configured (`RUST_LOG` or `log.level`), checked.
pub(super) struct LogFilter<'a> {
    text: &'a str,
}

impl<'a> LogFilter<'a> {
    /// Checks the text, so that a bad filter is refused before anything starts.
    pub(super) fn parse(text: &'a str) -> Result<Self, TelemetryError> {
        let filter = Self { text };
        filter.env()?;
        Ok(filter)
    }

    /// A fresh filter of this text: each place that applies it needs its own (a filter that
    /// selects by span keeps per-span state).
    pub(super) fn env(&self) -> Result<EnvFilter, TelemetryError> {
        EnvFilter::try_new(self.text).map_err(|e| TelemetryError::Filter {
            filter: self.text.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Whether it names spans (`[tick{instance=m-1}]=debug`): brackets are the only way to.
    /// Such a filter needs the spans built to apply.
    pub(super) fn selects_by_span(&self) -> bool {
        self.text.contains('[')
    }
}

/// A global filter that lets through what the exporter's targets or the log filter let
/// through, and refuses the rest before the per-layer filters under it are asked.
pub(super) struct EitherFilter {
    pub(super) exported: Targets,
    pub(super) logged: EnvFilter,
}

impl<S> Layer<S> for EitherFilter
where
    S: tracing::Subscriber,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        let exported = Layer::<S>::register_callsite(&self.exported, meta);
        let logged = Layer::<S>::register_callsite(&self.logged, meta);
        if exported.is_always() || logged.is_always() {
            Interest::always()
        } else if exported.is_never() && logged.is_never() {
            Interest::never()
        } else {
            Interest::sometimes()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        Layer::<S>::enabled(&self.exported, meta, ctx.clone())
            || Layer::<S>::enabled(&self.logged, meta, ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let exported = Layer::<S>::max_level_hint(&self.exported)?;
        let logged = Layer::<S>::max_level_hint(&self.logged)?;
        Some(exported.max(logged))
    }

    // The log filter's own record of which spans it selects (for a filter that names spans).
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        Layer::<S>::on_new_span(&self.logged, attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        Layer::<S>::on_record(&self.logged, id, values, ctx);
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        Layer::<S>::on_enter(&self.logged, id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        Layer::<S>::on_exit(&self.logged, id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        Layer::<S>::on_close(&self.logged, id, ctx);
    }
}
