pub mod sms;
