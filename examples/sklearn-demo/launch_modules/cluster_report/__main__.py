import sys
from collections import Counter

from report_format import render
from sklearn.cluster import KMeans
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler


def main() -> int:
    features, _ = load_wine(return_X_y=True)
    scaled = StandardScaler().fit_transform(features)
    labels = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(scaled)
    sizes = sorted(Counter(int(label) for label in labels).items())
    print(render(sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
