//! Parsing the `POST /v2/orders` body into an order request.
//!
//! Accepts both SDK styles (numbers or strings for decimals, booleans or strings for flags).
//! Order features the simulator does not model (bracket/OCO/OTO classes, trailing stops,
//! `opg`/`cls`) are refused with a 422 that says so, rather than half-handled.

use serde_json::Value;

use super::error::ApiError;
use super::params::{json_bool, json_decimal, json_str, symbol};
use crate::sim::exchange::{Amount, NewOrder, OrderType, Side, TimeInForce};

fn unsupported(what: &str) -> ApiError {
    ApiError::invalid(format!("{what} is not supported by the simulator"))
}

/// Parses a JSON object body.
pub fn parse(body: &[u8]) -> Result<NewOrder, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ApiError::bad_body())?;
    if !v.is_object() {
        return Err(ApiError::bad_body());
    }
    let symbol =
        symbol(json_str(&v, "symbol")?.ok_or_else(|| ApiError::invalid("symbol is required"))?)?;
    let side = match json_str(&v, "side")? {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        Some(other) => return Err(ApiError::invalid(format!("invalid side: {other}"))),
        None => return Err(ApiError::invalid("side is required")),
    };
    let order_type = match json_str(&v, "type")?.or(json_str(&v, "order_type")?) {
        Some("market") => OrderType::Market,
        Some("limit") => OrderType::Limit,
        Some("stop") => OrderType::Stop,
        Some("stop_limit") => OrderType::StopLimit,
        Some("trailing_stop") => return Err(unsupported("order type trailing_stop")),
        Some(other) => return Err(ApiError::invalid(format!("invalid order type: {other}"))),
        None => return Err(ApiError::invalid("type is required")),
    };
    let time_in_force = match json_str(&v, "time_in_force")? {
        Some("day") => TimeInForce::Day,
        Some("gtc") => TimeInForce::Gtc,
        Some("ioc") => TimeInForce::Ioc,
        Some("fok") => TimeInForce::Fok,
        Some(tif @ ("opg" | "cls")) => return Err(unsupported(&format!("time_in_force {tif}"))),
        Some(other) => {
            return Err(ApiError::invalid(format!("invalid time_in_force: {other}")));
        }
        None => return Err(ApiError::invalid("time_in_force is required")),
    };
    match json_str(&v, "order_class")? {
        None | Some("simple") => {}
        Some(class) => return Err(unsupported(&format!("order_class {class}"))),
    }
    for field in ["take_profit", "stop_loss", "legs"] {
        if v.get(field).is_some_and(|x| !x.is_null()) {
            return Err(unsupported(field));
        }
    }
    for field in ["trail_price", "trail_percent"] {
        if json_decimal(&v, field)?.is_some() {
            return Err(unsupported(field));
        }
    }
    let amount = match (json_decimal(&v, "qty")?, json_decimal(&v, "notional")?) {
        (Some(q), None) => Amount::Qty(q),
        (None, Some(n)) => Amount::Notional(n),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "only one of qty or notional may be specified",
            ));
        }
        (None, None) => return Err(ApiError::invalid("qty or notional is required")),
    };
    Ok(NewOrder {
        symbol,
        amount,
        side,
        order_type,
        time_in_force,
        limit_price: json_decimal(&v, "limit_price")?,
        stop_price: json_decimal(&v, "stop_price")?,
        extended_hours: json_bool(&v, "extended_hours")?.unwrap_or(false),
        client_order_id: json_str(&v, "client_order_id")?.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py_and_js_bodies_parse_the_same() {
        let py = br#"{"symbol":"SPY","qty":1.5,"side":"buy","type":"market","time_in_force":"day","extended_hours":false}"#;
        let js = br#"{"symbol":"SPY","qty":"1.5","side":"buy","type":"market","time_in_force":"day","extended_hours":"false"}"#;
        assert_eq!(parse(py), parse(js));
        assert!(parse(py).is_ok());
    }

    #[test]
    fn bad_bodies_get_alpaca_errors() {
        assert_eq!(parse(b"not json").unwrap_err().status.as_u16(), 400);
        assert_eq!(parse(b"[1]").unwrap_err().status.as_u16(), 400);
        let e = parse(
            br#"{"symbol":"SPY","qty":1,"side":"hold","type":"market","time_in_force":"day"}"#,
        )
        .unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(e.body["code"], 40010001);
        let e = parse(br#"{"symbol":"SPY","qty":1,"side":"buy","type":"market","time_in_force":"day","order_class":"bracket"}"#)
            .unwrap_err();
        assert!(
            e.body["message"]
                .as_str()
                .unwrap_or("")
                .contains("not supported")
        );
    }
}
