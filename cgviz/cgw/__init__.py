"""The .cgw training record, torch-free: its lines written (`writer`), read back (`read`) and judged (`analysis`)."""
