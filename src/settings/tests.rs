//! Loading and validation, through the same entry point as the binary, with an injected
//! environment and config directory.

use std::path::Path;

use super::*;
use crate::strategy::mean_reversion::MeanReversionParams;
use crate::strategy::momentum::MomentumParams;
use crate::strategy::neural::NeuralForecastParams;
use crate::strategy::portfolio_optimizer::PortfolioOptimizerParams;
use crate::strategy::risk_manager::RiskManagerParams;

fn load_with(
    dir: &Path,
    env: &[(&str, &str)],
    file: Option<&str>,
) -> Result<Settings, SettingsError> {
    let config_file = file.map(|body| {
        let path = dir.join("extra.toml");
        std::fs::write(&path, body).unwrap();
        path
    });
    let options = LoadOptions {
        config_file,
        config_dir: dir.join("config"),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    Settings::load(&options)
}

fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, SettingsError> {
    let dir = tempfile::tempdir().unwrap();
    load_with(dir.path(), env, file)
}

fn error(env: &[(&str, &str)], file: Option<&str>) -> String {
    match load(env, file) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn momentum(s: &Settings, i: usize) -> &MomentumParams {
    match &s.instances[i].params {
        StrategyParams::Momentum(p) => p,
        #[allow(unreachable_patterns)]
        other => panic!("not momentum: {other:?}"),
    }
}

use crate::strategy::StrategyParams;

#[test]
fn built_in_defaults_run_one_instance_of_each_shipped_kind_against_the_simulator() {
    let s = load(&[], None).unwrap();
    assert_eq!(s.venue(), Venue::Simulator);
    assert_eq!(s.http.port, 3000);
    let shipped: Vec<_> = s
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.kind.as_str()))
        .collect();
    assert_eq!(
        shipped,
        [
            ("momentum-etf", "momentum"),
            ("mean-reversion-metals", "mean_reversion"),
            ("neural-forecast", "neural_forecast"),
            ("portfolio-optimizer", "portfolio_optimizer"),
            ("risk-manager", "risk_manager")
        ]
    );
    let symbols: Vec<_> = s.instances[0].symbols.iter().map(|s| s.as_str()).collect();
    assert_eq!(symbols, ["SPY", "QQQ", "IWM"]);
    assert_eq!(s.instances[0].every, std::time::Duration::from_secs(300));
}

#[test]
fn the_default_instances_spell_out_their_kinds_defaults() {
    let s = load(&[], None).unwrap();
    assert_eq!(momentum(&s, 0), &MomentumParams::default());
    assert_eq!(
        s.instances[1].params,
        StrategyParams::MeanReversion(MeanReversionParams::default())
    );
    assert_eq!(
        s.instances[2].params,
        StrategyParams::NeuralForecast(NeuralForecastParams::default())
    );
    assert_eq!(
        s.instances[3].params,
        StrategyParams::PortfolioOptimizer(PortfolioOptimizerParams::default())
    );
    let guard = [
        "momentum-etf",
        "mean-reversion-metals",
        "neural-forecast",
        "portfolio-optimizer",
    ];
    assert_eq!(
        s.instances[4].params,
        StrategyParams::RiskManager(RiskManagerParams {
            guard: guard.iter().map(|g| g.to_string()).collect(),
            ..RiskManagerParams::default()
        })
    );
}

#[test]
fn seed_environment_names_are_honoured_and_herd_names_win() {
    let s = load(&[("PORT", "8080"), ("LOG_LEVEL", "debug")], None).unwrap();
    assert_eq!((s.http.port, s.log.level.as_str()), (8080, "debug"));
    let s = load(&[("PORT", "8080"), ("HERD__HTTP__PORT", "9090")], None).unwrap();
    assert_eq!(s.http.port, 9090);
}

#[test]
fn symbols_threshold_and_size_configure_every_momentum_instance() {
    let env = [
        ("SYMBOLS", " spy, QQQ "),
        ("MOMENTUM_THRESHOLD", "0.05"),
        ("POSITION_SIZE", "3"),
    ];
    let s = load(&env, None).unwrap();
    let symbols: Vec<_> = s.instances[0].symbols.iter().map(|s| s.as_str()).collect();
    assert_eq!(symbols, ["SPY", "QQQ"]);
    assert_eq!(momentum(&s, 0).threshold, 0.05);
    assert_eq!(
        momentum(&s, 0).position_size,
        rust_decimal::Decimal::from(3)
    );
    assert_eq!(
        s.notices,
        [
            "SYMBOLS: \" spy\" is traded as \"SPY\"",
            "SYMBOLS: \" QQQ \" is traded as \"QQQ\""
        ]
    );
}

#[test]
fn an_empty_or_invalid_symbols_entry_is_refused_naming_the_entry() {
    let e = error(&[("SYMBOLS", "spy,,QQQ")], None);
    assert!(
        e.contains("SYMBOLS = \"spy,,QQQ\": entry 2 is empty"),
        "{e}"
    );
    let e = error(&[("SYMBOLS", "SPY,")], None);
    assert!(e.contains("entry 2 is empty"), "{e}");
    let e = error(&[("SYMBOLS", "SPY,S P Y")], None);
    assert!(
        e.contains("SYMBOLS = \"SPY,S P Y\": entry 2: a symbol is"),
        "{e}"
    );
}

#[test]
fn a_lower_case_symbol_in_a_file_is_traded_upper_case_and_said_so() {
    let s = load(&[], Some(&ONE.replace("[\"SPY\"]", "[\"spy\"]"))).unwrap();
    assert_eq!(s.instances.last().unwrap().symbols[0].as_str(), "SPY");
    assert_eq!(
        s.notices,
        ["strategies[0].symbols: \"spy\" is traded as \"SPY\""]
    );
}

#[test]
fn an_unknown_log_format_names_the_allowed_ones() {
    let e = error(&[("HERD__LOG__FORMAT", "xml")], None);
    assert!(
        e.contains("log.format") && e.contains("\"xml\" is not a log format; allowed: json, text"),
        "{e}"
    );
}

#[test]
fn credentials_select_alpaca_and_are_never_printed() {
    let env = [
        ("ALPACA_API_KEY", "PKTEST"),
        ("ALPACA_SECRET_KEY", "s3cr3t"),
    ];
    let s = load(&env, None).unwrap();
    assert_eq!(s.venue(), Venue::AlpacaPaper);
    assert_eq!(s.broker.key_id.expose(), "PKTEST");
    let printed = s.to_redacted_toml();
    assert!(
        !printed.contains("PKTEST") && !printed.contains("s3cr3t"),
        "{printed}"
    );
    assert!(printed.contains("[redacted]"));
}

#[test]
fn half_a_credential_pair_is_refused() {
    let e = error(&[("ALPACA_API_KEY", "PKTEST")], None);
    assert!(
        e.contains("broker.secret_key") && e.contains("required"),
        "{e}"
    );
}

#[test]
fn the_live_host_needs_enable_live_trading() {
    let live = [
        ("ALPACA_API_KEY", "AK"),
        ("ALPACA_SECRET_KEY", "s"),
        ("ALPACA_BASE_URL", "https://api.alpaca.markets"),
    ];
    let e = error(&live, None);
    assert!(
        e.contains("broker.base_url") && e.contains("ENABLE_LIVE_TRADING=true"),
        "{e}"
    );
    let mut enabled = live.to_vec();
    enabled.push(("ENABLE_LIVE_TRADING", "true"));
    assert_eq!(load(&enabled, None).unwrap().venue(), Venue::AlpacaLive);
}

const ONE: &str =
    "[[strategies]]\nid = \"a\"\nkind = \"momentum\"\nsymbols = [\"SPY\"]\nevery = \"1m\"\n";

#[test]
fn an_unknown_kind_names_the_key_the_value_and_the_allowed_kinds() {
    let e = error(&[], Some(&ONE.replace("\"momentum\"", "\"momentom\"")));
    assert!(e.contains("strategies[0].kind = \"momentom\""), "{e}");
    assert!(e.contains("allowed: momentum"), "{e}");
}

#[test]
fn duplicate_ids_are_refused() {
    let e = error(&[], Some(&format!("{ONE}{ONE}")));
    assert!(
        e.contains("strategies[1].id = \"a\"") && e.contains("duplicate"),
        "{e}"
    );
}

#[test]
fn empty_and_repeated_symbols_are_refused() {
    let e = error(&[], Some(&ONE.replace("[\"SPY\"]", "[]")));
    assert!(e.contains("strategies[0].symbols = []"), "{e}");
    let e = error(&[], Some(&ONE.replace("[\"SPY\"]", "[\"SPY\", \"spy\"]")));
    assert!(
        e.contains("strategies[0].symbols") && e.contains("twice"),
        "{e}"
    );
}

#[test]
fn a_threshold_at_or_below_zero_is_refused() {
    let e = error(
        &[],
        Some(&format!("{ONE}[strategies.params]\nthreshold = -0.01\n")),
    );
    assert!(
        e.contains("strategies[0].params.threshold = -0.01: must be greater than 0"),
        "{e}"
    );
    let e = error(
        &[],
        Some(&format!("{ONE}[strategies.params]\nthreshold = 0\n")),
    );
    assert!(e.contains("strategies[0].params.threshold = 0"), "{e}");
}

#[test]
fn an_unparsable_duration_names_the_key_and_the_format() {
    let e = error(&[], Some(&ONE.replace("\"1m\"", "\"5 minutes-ish\"")));
    assert!(
        e.contains("strategies[0].every") && e.contains("\"5 minutes-ish\""),
        "{e}"
    );
    assert!(e.contains("e.g. \"500ms\""), "{e}");
    let e = error(&[("HERD__SHUTDOWN__GRACE", "soon")], None);
    assert!(
        e.contains("shutdown.grace") && e.contains("\"soon\""),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_refused_wherever_they_are() {
    let e = error(&[], Some("[http]\nprot = 1\n"));
    assert!(
        e.contains("unknown field `prot`") && e.contains("http"),
        "{e}"
    );
    let e = error(&[], Some(&format!("{ONE}colour = \"red\"\n")));
    assert!(
        e.contains("unknown field `colour`") && e.contains("strategies[0]"),
        "{e}"
    );
    let e = error(
        &[],
        Some(&format!("{ONE}[strategies.params]\nthresold = 0.1\n")),
    );
    assert!(
        e.contains("strategies[0].params") && e.contains("unknown field `thresold`"),
        "{e}"
    );
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let e = error(&[("MOMENTUM_THRESHOLD", "lots")], None);
    assert!(
        e.contains("MOMENTUM_THRESHOLD = \"lots\": must be a number"),
        "{e}"
    );
    let e = error(&[("PORT", "eighty")], None);
    assert!(e.contains("http.port"), "{e}");
}

#[test]
fn a_missing_config_file_or_profile_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let options = LoadOptions {
        config_file: Some(dir.path().join("nope.toml")),
        config_dir: dir.path().join("config"),
        env: Default::default(),
    };
    assert!(matches!(
        Settings::load(&options),
        Err(SettingsError::File { .. })
    ));
    let e = load_with(dir.path(), &[("HERD_ENV", "staging")], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("HERD_ENV = \"staging\""), "{e}");
}

#[test]
fn layers_apply_in_order_default_then_profile_then_file_then_env() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("default.toml"),
        "[http]\nport = 1111\nworkers = 3\n",
    )
    .unwrap();
    std::fs::write(config.join("staging.toml"), "[http]\nport = 2222\n").unwrap();
    let s = load_with(dir.path(), &[("HERD_ENV", "staging")], None).unwrap();
    assert_eq!((s.http.port, s.http.workers), (2222, 3));
    let s = load_with(
        dir.path(),
        &[("HERD_ENV", "staging")],
        Some("[http]\nport = 3333\n"),
    )
    .unwrap();
    assert_eq!(s.http.port, 3333);
    let env = [("HERD_ENV", "staging"), ("HERD__HTTP__PORT", "4444")];
    let s = load_with(dir.path(), &env, Some("[http]\nport = 3333\n")).unwrap();
    assert_eq!(s.http.port, 4444);
}

#[test]
fn a_disabled_instance_is_validated_but_not_run() {
    let s = load(
        &[],
        Some(&ONE.replace("every = \"1m\"", "every = \"1m\"\nenabled = false")),
    )
    .unwrap();
    assert!(s.instances.is_empty());
}

#[test]
fn max_order_value_usd_sets_the_risk_limit() {
    let s = load(&[("MAX_ORDER_VALUE_USD", "500")], None).unwrap();
    assert_eq!(
        s.broker.risk.max_order_value,
        Some(rust_decimal::Decimal::from(500))
    );
}

#[test]
fn resilience_settings_are_checked_with_their_keys() {
    let e = error(&[("HERD__BROKER__BREAKER__ERROR_THRESHOLD", "1.5")], None);
    assert!(e.contains("broker.breaker.error_threshold = 1.5"), "{e}");
    let e = error(&[("HERD__BROKER__DATA_LIMITER__READ_SHARE", "0")], None);
    assert!(e.contains("broker.data_limiter.read_share = 0"), "{e}");
    let e = error(&[("HERD__BROKER__CALL_TIMEOUT", "20s")], None);
    assert!(
        e.contains("broker.breaker.half_open_max") && e.contains("broker.call_timeout"),
        "{e}"
    );
    let e = error(&[("HERD__BROKER__BATCH_WINDOW", "5s")], None);
    assert!(e.contains("broker.batch_window"), "{e}");
}

const GUARD: &str = "[[strategies]]\nid = \"rm\"\nkind = \"risk_manager\"\nevery = \"2m\"\n[strategies.params]\nguard = [\"a\"]\n";

#[test]
fn a_risk_manager_watches_the_symbols_of_the_instances_it_guards() {
    let two =
        format!("{ONE}{GUARD}").replace("symbols = [\"SPY\"]", "symbols = [\"SPY\", \"QQQ\"]");
    let s = load(&[], Some(&two)).unwrap();
    let rm = s.instances.iter().find(|i| i.id.as_str() == "rm").unwrap();
    let symbols: Vec<_> = rm.symbols.iter().map(|s| s.as_str()).collect();
    assert_eq!(symbols, ["SPY", "QQQ"]);
}

#[test]
fn a_risk_manager_must_guard_other_configured_instances() {
    let unknown = format!("{ONE}{}", GUARD.replace("[\"a\"]", "[\"b\"]"));
    let e = error(&[], Some(&unknown));
    assert!(
        e.contains(
            "strategies[1].params.guard = \"b\": names no configured instance; configured: a, rm"
        ),
        "{e}"
    );
    let itself = format!("{ONE}{}", GUARD.replace("[\"a\"]", "[\"rm\"]"));
    let e = error(&[], Some(&itself));
    assert!(e.contains("cannot guard itself"), "{e}");
    let none = format!("{ONE}{}", GUARD.replace("guard = [\"a\"]\n", ""));
    let e = error(&[], Some(&none));
    assert!(e.contains("strategies[1].params.guard = []"), "{e}");
}

#[test]
fn sip_needs_the_stated_subscription_and_adjustment_is_checked() {
    let e = error(&[], Some("[broker]\nfeed = \"sip\"\n"));
    assert!(
        e.contains("broker.feed") && e.contains("broker.sip_subscription = true"),
        "{e}"
    );
    let s = load(
        &[],
        Some("[broker]\nfeed = \"sip\"\nsip_subscription = true\n"),
    )
    .unwrap();
    assert_eq!(s.broker.feed, "sip");
    assert_eq!(s.broker.adjustment, "all", "the default");
    let e = error(&[], Some("[broker]\nadjustment = \"splits\"\n"));
    assert!(
        e.contains("broker.adjustment") && e.contains("raw, split, dividend, all"),
        "{e}"
    );
}

#[test]
fn misspelt_otel_variables_are_refused_at_load() {
    let e = error(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317"),
            ("OTEL_TRACES_SAMPLER", "half"),
        ],
        None,
    );
    assert!(e.contains("OTEL_TRACES_SAMPLER"), "{e}");
}

#[test]
fn an_instance_session_is_regular_unless_set_and_a_bad_one_is_named() {
    let two = "[[strategies]]\nid = \"a\"\nkind = \"momentum\"\nsymbols = [\"SPY\"]\nevery = \"5m\"\n\n[[strategies]]\nid = \"b\"\nkind = \"momentum\"\nsymbols = [\"SPY\"]\nevery = \"5m\"\nsession = \"extended\"\n";
    let s = load(&[], Some(two)).unwrap();
    let sessions: Vec<_> = s.instances.iter().map(|i| i.session).collect();
    assert_eq!(
        sessions,
        [
            crate::domain::Session::Regular,
            crate::domain::Session::Extended
        ]
    );
    let e = error(&[], Some(&two.replace("\"extended\"", "\"overnight\"")));
    assert!(
        e.contains("strategies[1].session") && e.contains("regular or extended"),
        "{e}"
    );
}

const TWO_ACCOUNTS: &str = "[[accounts]]\nid = \"alpha\"\n\n[[accounts]]\nid = \"beta\"\n\n";

#[test]
fn without_accounts_every_instance_trades_the_default_account() {
    let s = load(&[], None).unwrap();
    assert_eq!(s.resolved_accounts.len(), 1);
    assert!(s.instances.iter().all(|i| i.account.as_str() == "default"));
}

#[test]
fn with_several_accounts_each_instance_names_one_that_exists() {
    let named = format!(
        "{TWO_ACCOUNTS}{}",
        ONE.replace("kind =", "account = \"beta\"\nkind =")
    );
    let s = load(&[], Some(&named)).unwrap();
    assert_eq!(s.instances[0].account.as_str(), "beta");
    let e = error(&[], Some(&format!("{TWO_ACCOUNTS}{ONE}")));
    assert!(
        e.contains("strategies[0].account = (absent): required when several accounts are configured; one of: alpha, beta"),
        "{e}"
    );
    let unknown = format!(
        "{TWO_ACCOUNTS}{}",
        ONE.replace("kind =", "account = \"gamma\"\nkind =")
    );
    let e = error(&[], Some(&unknown));
    assert!(
        e.contains("strategies[0].account = \"gamma\": names no configured account; configured: alpha, beta"),
        "{e}"
    );
    let with_broker_key = error(
        &[("ALPACA_API_KEY", "k"), ("ALPACA_SECRET_KEY", "s")],
        Some(&named),
    );
    assert!(
        with_broker_key.contains("broker.key_id"),
        "{with_broker_key}"
    );
}

#[test]
fn a_risk_manager_guards_only_its_own_accounts_instances() {
    let on = |toml: &str, account: &str| {
        toml.replace("kind =", &format!("account = \"{account}\"\nkind ="))
    };
    let apart = format!("{TWO_ACCOUNTS}{}{}", on(ONE, "alpha"), on(GUARD, "beta"));
    let e = error(&[], Some(&apart));
    assert!(
        e.contains("strategies[1].params.guard = \"a\": trades account \"alpha\""),
        "{e}"
    );
    let together = format!("{TWO_ACCOUNTS}{}{}", on(ONE, "beta"), on(GUARD, "beta"));
    assert!(load(&[], Some(&together)).is_ok());
}
