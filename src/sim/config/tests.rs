//! The `[sim]` table: defaults, unknown keys, durations, validation messages, redaction.
use super::*;

#[test]
fn defaults_are_valid() {
    SimConfig::default().validate().expect("defaults validate");
}

#[test]
fn empty_table_gives_defaults() {
    let cfg: SimConfig = toml::from_str("").expect("empty table");
    assert_eq!(cfg.speed, 100.0);
    assert_eq!(cfg.seed, 42);
    assert_eq!(cfg.fill_delay, SimDuration(Duration::from_secs(2)));
}

#[test]
fn unknown_keys_are_rejected() {
    let err = toml::from_str::<SimConfig>("sped = 3.0").expect_err("typo rejected");
    assert!(err.to_string().contains("sped"), "{err}");
    let err = toml::from_str::<SimConfig>("[faults.orders]\nerror_rat = 0.5")
        .expect_err("nested typo rejected");
    assert!(err.to_string().contains("error_rat"), "{err}");
}

#[test]
fn durations_parse_as_humantime_and_bad_ones_name_the_format() {
    let cfg: SimConfig = toml::from_str("fill_delay = \"250ms\"").expect("parses");
    assert_eq!(cfg.fill_delay, SimDuration::from_millis(250));
    let err = toml::from_str::<SimConfig>("fill_delay = \"soon\"").expect_err("bad");
    assert!(
        err.to_string().contains("expected a duration like"),
        "{err}"
    );
}

#[test]
fn validation_names_key_value_and_allowed() {
    let cfg = SimConfig {
        speed: -1.0,
        ..SimConfig::default()
    };
    let err = cfg.validate().expect_err("negative speed");
    assert_eq!(
        err.to_string(),
        "invalid sim.speed = -1: a number from 0 (frozen clock) to 1000000"
    );
    let mut cfg = SimConfig::default();
    cfg.faults.orders.error_rate = 2.0;
    let err = cfg.validate().expect_err("rate above 1");
    assert!(
        err.to_string()
            .starts_with("invalid sim.faults.orders.error_rate = 2"),
        "{err}"
    );
    let cfg = SimConfig {
        start: Some("yesterday".into()),
        ..SimConfig::default()
    };
    assert!(
        cfg.validate()
            .expect_err("bad start")
            .to_string()
            .contains("sim.start")
    );
}

#[test]
fn loads_through_the_config_crate_with_string_overrides() {
    // herd reads `[sim]` through `config`; env overrides arrive as strings.
    let toml =
        "[sim]\nseed = 7\nmarket_hours = \"regular\"\n[sim.symbols.SPY]\nstart_price = 400.0\n";
    let built = config::Config::builder()
        .add_source(config::File::from_str(toml, config::FileFormat::Toml))
        .set_override("sim.speed", "250")
        .and_then(|b| b.set_override("sim.fill_delay", "500ms"))
        .and_then(|b| b.set_override("sim.regimes", "false"))
        .and_then(|b| b.set_override("sim.faults.orders.error_rate", "0.25"))
        .expect("overrides")
        .build()
        .expect("builds");
    let cfg: SimConfig = built.get("sim").expect("deserialises");
    assert_eq!(cfg.seed, 7);
    assert_eq!(cfg.speed, 250.0);
    assert_eq!(cfg.fill_delay, SimDuration::from_millis(500));
    assert!(!cfg.regimes);
    assert_eq!(cfg.market_hours, MarketHours::Regular);
    assert_eq!(cfg.faults.orders.error_rate, 0.25);
    assert_eq!(cfg.symbols["SPY"].start_price, Some(400.0));
    cfg.validate().expect("valid");
}

#[test]
fn secret_is_redacted_when_printed() {
    let cfg = SimConfig {
        key_id: Some("k".into()),
        secret_key: Some(Redacted("hunter2".into())),
        ..SimConfig::default()
    };
    cfg.validate().expect("pinned pair is valid");
    assert!(!format!("{cfg:?}").contains("hunter2"));
    let json = serde_json::to_string(&cfg).expect("serialises");
    assert!(!json.contains("hunter2"));
}

#[test]
fn key_without_secret_is_rejected() {
    let cfg = SimConfig {
        key_id: Some("k".into()),
        ..SimConfig::default()
    };
    assert!(
        cfg.validate()
            .expect_err("no secret")
            .to_string()
            .contains("secret_key")
    );
}
