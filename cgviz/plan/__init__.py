"""A model's picture planned before any drawing: what is drawn, a module's inside, the page's levels, the budget."""
