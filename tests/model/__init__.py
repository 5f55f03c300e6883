"""The model: every component and both predictors against the official implementation, loading, frames."""
