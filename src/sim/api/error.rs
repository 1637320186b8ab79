//! Alpaca-shaped error responses: `{"code": <8 digits>, "message": "..."}` with the status
//! Alpaca uses. Every failure of a simulator endpoint goes through here, so no bad request ever
//! gets anything but such a body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

use crate::sim::exchange::ExchangeError;

/// An error response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {body}")]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u64, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "code": code, "message": message.into() }),
        }
    }

    /// 422 with code 40010001: a trading API parameter Alpaca refuses.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 40010001, message)
    }

    /// 422 with code 42210000: a market data parameter Alpaca refuses.
    pub fn invalid_data(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42210000, message)
    }

    /// 400: a body that is not JSON or not an object.
    pub fn bad_body() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            40010000,
            "request body format is invalid",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, 40410000, message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(&self.body)
    }
}

impl From<ExchangeError> for ApiError {
    fn from(e: ExchangeError) -> Self {
        let message = e.to_string();
        match e {
            ExchangeError::InsufficientBuyingPower {
                buying_power,
                cost_basis,
            } => ApiError {
                status: StatusCode::FORBIDDEN,
                body: json!({
                    "code": 40310000,
                    "message": message,
                    "buying_power": buying_power,
                    "cost_basis": cost_basis,
                }),
            },
            ExchangeError::InsufficientQty {
                symbol,
                available,
                existing_qty,
                held_for_orders,
                ..
            } => ApiError {
                status: StatusCode::FORBIDDEN,
                body: json!({
                    "code": 40310000,
                    "message": message,
                    "symbol": symbol,
                    "available": available,
                    "existing_qty": existing_qty,
                    "held_for_orders": held_for_orders,
                }),
            },
            ExchangeError::DuplicateClientOrderId | ExchangeError::Invalid(_) => {
                ApiError::invalid(message)
            }
            ExchangeError::OrderNotFound | ExchangeError::PositionNotFound => {
                ApiError::not_found(message)
            }
            ExchangeError::NotCancelable(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, 42210000, message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_errors_map_to_alpaca_statuses_and_codes() {
        let e = ApiError::from(ExchangeError::PositionNotFound);
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(
            e.body,
            json!({"code": 40410000, "message": "position does not exist"})
        );
        let e = ApiError::from(ExchangeError::DuplicateClientOrderId);
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.body,
            json!({"code": 40010001, "message": "client_order_id must be unique"})
        );
        let e = ApiError::from(ExchangeError::NotCancelable("filled"));
        assert_eq!(e.body["message"], "order is already in \"filled\" state");
    }
}
