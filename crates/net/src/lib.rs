pub mod throttle;
pub mod tls;
