"""AMHS in the what-if: the layout linked to the process model, and a fast OHT fleet model."""
