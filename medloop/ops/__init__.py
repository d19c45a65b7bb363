"""Operations: health, metrics and logs."""
