"""The two colours every picture means something by: blue values forward, red gradients back."""

FORWARD = "#1f5fbf"   # blue: values flowing forward
BACKWARD = "#c62828"  # red: gradients flowing back
