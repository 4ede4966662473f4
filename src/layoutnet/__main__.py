from layoutnet.train import main

main()
