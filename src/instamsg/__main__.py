from instamsg.cli.main import main

main()
